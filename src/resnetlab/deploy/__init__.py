"""A trained model outside resnetlab: files in deployable formats (ONNX, TorchScript, torch.export,
safetensors) that carry what is needed to feed them images, and an ONNX Runtime reader for them."""

from resnetlab.deploy.card import ModelCard
from resnetlab.deploy.formats import FORMATS, default_name, write_model

__all__ = ["FORMATS", "ModelCard", "default_name", "write_model"]
