"""An exported ONNX file run by ONNX Runtime, with its preprocessing read from its own metadata."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from resnetlab.deploy.card import ModelCard
from resnetlab.errors import UserError, first_line
from resnetlab.extras import require


class OnnxModel:
    """``run(images)`` maps normalized float32 (N, C, H, W) to outputs; ``prepare(uint8)`` normalizes."""

    def __init__(self, path: str | Path, *, threads: int = 0) -> None:
        ort = require("onnxruntime", extra="export", what="running an ONNX file")
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"ONNX file {self.path} not found; give a file written by resnetlab export")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        state = ort.capi.onnxruntime_pybind11_state  # where ONNX Runtime's own exception types live
        unreadable = tuple(getattr(state, name) for name in ("Fail", "InvalidProtobuf", "InvalidGraph",
                                                             "InvalidArgument", "NoSuchFile") if hasattr(state, name))
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=options,
                                                providers=["CPUExecutionProvider"])
        except unreadable as exc:
            raise UserError(f"{self.path} is not a readable ONNX model ({first_line(exc)}); "
                            "give a file written by resnetlab export") from None
        props = self.session.get_modelmeta().custom_metadata_map
        self.card = ModelCard.from_strings(dict(props), source=str(self.path))
        self.input_name = self.session.get_inputs()[0].name

    def prepare(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, C, H, W) as the model's float32 input: ``(x / 255 - mean) / std``."""
        mean = np.asarray(self.card.mean, dtype=np.float32).reshape(1, -1, 1, 1)
        std = np.asarray(self.card.std, dtype=np.float32).reshape(1, -1, 1, 1)
        return ((images.astype(np.float32) / 255.0 - mean) / std).astype(np.float32)

    def run(self, images: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(images, dtype=np.float32)})[0]
