"""Grad-CAM points at the evidence: on images whose class is a small bright patch, the map peaks on the patch."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from resnetlab.errors import UserError
from resnetlab.evaluation.gradcam import find_layer, grad_cam, report_examples
from resnetlab.models import create_model, with_multiscale
from resnetlab.models.resnet import BasicBlock, ResNet

SIZE, PATCH = 24, 4  # a 4x4 patch is 3% of the image


def _patch_images(n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray]:
    """Dim noise; class 1 images also hold a bright PATCH x PATCH square somewhere."""
    images = rng.uniform(0, 0.3, (n, 1, SIZE, SIZE)).astype(np.float32)
    labels = rng.integers(0, 2, n)
    tops, lefts = rng.integers(0, SIZE - PATCH + 1, n), rng.integers(0, SIZE - PATCH + 1, n)
    for i in np.flatnonzero(labels == 1):
        images[i, 0, tops[i]:tops[i] + PATCH, lefts[i]:lefts[i] + PATCH] = 1.0
    return torch.from_numpy(images), torch.from_numpy(labels), tops, lefts


@pytest.fixture(scope="module")
def patch_model():
    """Two stages (map 12x12, stride 2) trained 60 Adam steps: seconds on one thread."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = ResNet(BasicBlock, [1, 1], widths=(8, 16), stem="cifar", num_classes=2, in_channels=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    images, labels, _, _ = _patch_images(512, rng)
    for _ in range(60):
        batch = torch.from_numpy(rng.integers(0, len(images), 32))
        loss = F.cross_entropy(model(images[batch]), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), rng


def test_the_map_peaks_on_the_patch_that_decides_the_class(patch_model):
    model, rng = patch_model
    images, labels, tops, lefts = _patch_images(64, rng)
    positive = np.flatnonzero(labels.numpy() == 1)
    result = grad_cam(model, images[positive], targets=np.ones(len(positive), dtype=np.int64))
    assert result.maps.shape == (len(positive), SIZE, SIZE) and result.map_size == (12, 12)
    cell = SIZE // result.map_size[0]  # the map cannot place its peak finer than one of its cells
    for cam, i in zip(result.maps, positive):
        row, col = np.unravel_index(cam.argmax(), cam.shape)
        assert tops[i] - cell <= row < tops[i] + PATCH + cell and lefts[i] - cell <= col < lefts[i] + PATCH + cell
        inside = np.zeros((SIZE, SIZE), dtype=bool)
        inside[tops[i]:tops[i] + PATCH, lefts[i]:lefts[i] + PATCH] = True
        # Over training seeds 0-7 every peak was within one cell and the in/out ratio was >= 5.1 (median ~8);
        # a map that ignored the patch would give about 1.
        assert cam[inside].mean() > 3 * cam[~inside].mean()


def test_the_default_layer_is_the_last_stage_and_others_are_named():
    cifar = create_model("resnet20", num_classes=3, in_channels=1)
    assert find_layer(cifar, None)[0] == "layer3"
    fused = with_multiscale(create_model("resnet18", num_classes=3, stem="cifar"), project_dim=8)
    name, module = find_layer(fused, "layer2")
    assert name == "layer2" and module is fused.backbone.layer2
    with pytest.raises(UserError, match="--layer layer9: the model has no such layer; use one of its stages: "
                                        "layer1, layer2, layer3"):
        find_layer(cifar, "layer9")
    with pytest.raises(UserError, match="gives vectors of shape"):
        grad_cam(cifar, torch.randn(2, 1, 16, 16), layer="fc")


def test_the_model_is_left_as_it_was():
    model = create_model("resnet20", num_classes=3, in_channels=1).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = grad_cam(model, torch.randn(2, 1, 16, 16))
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(p.grad is not None for p in model.parameters())
    assert result.explained.tolist() == result.outputs.argmax(1).tolist()
    assert 0.0 <= result.maps.min() and result.maps.max() <= 1.0


def test_report_examples_draw_right_and_wrong_images(patch_model, tmp_path):
    model, rng = patch_model
    images, labels, _, _ = _patch_images(16, rng)
    uint8 = (images.numpy() * 255).round().astype(np.uint8)
    outputs = np.eye(2, dtype=np.float32)[labels.numpy()] * 3
    outputs[:3] = outputs[:3, ::-1]  # three mistakes
    path = report_examples(model, uint8, labels.numpy(), outputs, ["plain", "patch"], mean=(0.0,), std=(1.0,),
                           path=tmp_path / "gradcam.png")
    assert path.stat().st_size > 5000
    tiny = create_model("resnet20", num_classes=2, in_channels=1)  # 4 px input: its last map is 1x1
    note = report_examples(tiny, uint8[:, :, :4, :4], labels.numpy(), outputs, ["a", "b"], mean=(0.0,),
                           std=(1.0,), path=tmp_path / "note.png")
    assert note.is_file()
