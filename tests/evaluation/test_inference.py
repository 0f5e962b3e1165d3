"""The one inference path: outputs in order, pooled features, flip TTA, memory layout, compile."""

import numpy as np
import pytest
import torch

from resnetlab.data.loader import BatchLoader
from resnetlab.evaluation import inference
from resnetlab.evaluation.inference import OutputsAndFeatures, run_model
from resnetlab.models import create_model


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=4, in_channels=1).eval()
    images = np.random.default_rng(0).integers(0, 256, size=(10, 1, 12, 12), dtype=np.uint8)
    return model, images


def prepare(batch: torch.Tensor) -> torch.Tensor:
    return batch.float() / 255.0


def loader(images: np.ndarray) -> BatchLoader:
    # Batches of 4 with a short last one, in order.
    return BatchLoader(images, np.arange(len(images)) % 4, batch_size=4, device=torch.device("cpu"))


def test_outputs_features_and_tta_match_the_model(setup):
    model, images = setup
    x = prepare(torch.from_numpy(images))
    with torch.no_grad():
        logits = model(x)
        pooled = model.forward_head(model.forward_features(x), pre_logits=True)
        flipped = model(x.flip(-1))
    out = run_model(model, loader(images), prepare=prepare, keep_features=True)
    np.testing.assert_allclose(out.outputs, logits.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.features, pooled.numpy(), rtol=1e-5, atol=1e-5)
    assert out.index.tolist() == list(range(10)) and out.targets.tolist() == [i % 4 for i in range(10)]
    tta = run_model(model, loader(images), prepare=prepare, tta=True, keep_features=True)
    np.testing.assert_allclose(tta.outputs, ((logits + flipped) / 2).numpy(), rtol=1e-5, atol=1e-5)


def test_channels_last_gives_the_same_outputs(setup):
    model, images = setup
    plain = run_model(model, loader(images), prepare=prepare)
    model_cl = create_model("resnet20", num_classes=4, in_channels=1)
    model_cl.load_state_dict(model.state_dict())
    fast = run_model(model_cl, loader(images), prepare=prepare, channels_last=True)
    np.testing.assert_allclose(fast.outputs, plain.outputs, rtol=1e-4, atol=1e-4)
    assert model_cl.conv1.weight.is_contiguous(memory_format=torch.channels_last)


def test_compile_wraps_the_one_forward_that_gives_outputs_and_features(setup, monkeypatch):
    model, images = setup
    compiled = []

    def fake_compile(module):
        compiled.append(module)
        return module

    monkeypatch.setattr(inference.torch, "compile", fake_compile)
    out = run_model(model, loader(images), prepare=prepare, keep_features=True, compile=True)
    assert len(compiled) == 1 and isinstance(compiled[0], OutputsAndFeatures) and compiled[0].model is model
    assert out.features.shape == (10, model.num_features)
    run_model(model, loader(images), prepare=prepare, compile=True)
    assert compiled[1] is model


def test_torch_compile_really_runs_and_agrees(setup):
    model, images = setup
    plain = run_model(model, loader(images), prepare=prepare, keep_features=True)
    compiled = run_model(model, loader(images), prepare=prepare, keep_features=True, compile=True)
    np.testing.assert_allclose(compiled.outputs, plain.outputs, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(compiled.features, plain.features, rtol=1e-3, atol=1e-3)
