"""Mixup and CutMix: soft targets are the same convex combination as the pixels."""

from __future__ import annotations

import pytest
import torch

from resnetlab.data.augment import BatchAugment, normalize
from resnetlab.data.mix import cutmix, mix_targets, mixup, soft_targets

N, H, W = 16, 16, 16


def augment(*, num_classes: int = 10, seed: int = 0, **fields: float) -> BatchAugment:
    # Mean 0 and std 1: outputs are the [0, 1] pixels, easy to compare.
    return BatchAugment(**fields, num_classes=num_classes, mean=[0.0] * 3, std=[1.0] * 3,
                        seed=seed)


def as_unit(x: torch.Tensor) -> torch.Tensor:
    """The [0, 1] pixels as ``augment``'s outputs hold them (the evaluation path, bit for bit)."""
    return normalize(x, [0.0] * 3, [1.0] * 3)


def flat_images() -> torch.Tensor:
    """Image i is filled with the value 10 * (i + 1): every pixel tells which image it came from."""
    return (torch.arange(1, N + 1, dtype=torch.uint8) * 10).view(N, 1, 1, 1).expand(N, 3, H, W).contiguous()


def labels() -> torch.Tensor:
    return torch.arange(N) % 10  # neighbours (i, i - 1) always differ


def own_weight(targets: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The weight of each image's own label in its soft target."""
    return targets[torch.arange(len(y)), y]


def check_convex(targets: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Rows are w * onehot(y_i) + (1 - w) * onehot(y_{i-1}); returns w."""
    assert targets.dtype == torch.float32 and targets.shape == (len(y), 10)
    torch.testing.assert_close(targets.sum(1), torch.ones(len(y)))
    weight = own_weight(targets, y)
    expected = weight[:, None] * torch.eye(10)[y] + (1 - weight[:, None]) * torch.eye(10)[y.roll(1)]
    torch.testing.assert_close(targets, expected)
    assert weight.min() >= 0 and weight.max() <= 1
    return weight


def test_mixup_blends_pixels_and_targets_with_one_lambda():
    x, y = flat_images(), labels()
    out, targets = augment(mixup=0.4)(x, y)
    lam = check_convex(targets, y)
    assert torch.allclose(lam, lam[:1].expand(N))  # one lambda per batch
    unit = as_unit(x)
    torch.testing.assert_close(out, lam.view(N, 1, 1, 1) * unit + (1 - lam.view(N, 1, 1, 1)) * unit.roll(1, 0))


def test_cutmix_box_area_matches_each_images_weight():
    x, y = flat_images(), labels()
    unit = as_unit(x)
    weights = []
    for seed in range(3):
        out, targets = augment(cutmix=1.0, seed=seed)(x, y)
        weight = check_convex(targets, y)
        from_partner = (out == unit.roll(1, 0)).all(dim=1)  # (N, H, W)
        from_self = (out == unit).all(dim=1)
        assert torch.all(from_partner ^ from_self)
        torch.testing.assert_close(from_partner.flatten(1).float().mean(1), 1 - weight)
        for mask in from_partner.flatten(1).any(1).nonzero().flatten():
            box = from_partner[mask]
            rows, cols = box.any(1).nonzero().flatten(), box.any(0).nonzero().flatten()
            assert box.sum() == len(rows) * len(cols)  # a rectangle
        weights.append(weight)
    assert torch.cat(weights).std() > 0.05  # boxes differ between images and batches


def test_cutmix_function_keeps_the_requested_share_unless_clipped():
    x = torch.rand(64, 3, 32, 32)
    targets = soft_targets(torch.arange(64) % 10, num_classes=10)
    _, mixed = cutmix(x, targets, lam=0.75, generator=torch.Generator().manual_seed(0))
    kept = own_weight(mixed, torch.arange(64) % 10)
    # An unclipped 16x16 box leaves exactly 0.75; a box cut by the border leaves more.
    assert kept.min() == pytest.approx(0.75) and (kept == 0.75).sum() > 8 and kept.max() <= 1
    assert (kept > 0.75).any()


def test_both_alphas_pick_mixup_or_cutmix_per_batch():
    x, y = flat_images(), labels()
    unit = as_unit(x)
    aug = augment(mixup=1.0, cutmix=1.0)
    modes = []
    for _ in range(12):
        out, targets = aug(x, y)
        check_convex(targets, y)
        hard = (out == unit).all(1) | (out == unit.roll(1, 0)).all(1)
        modes.append("cutmix" if hard.all() else "mixup")
    assert set(modes) == {"mixup", "cutmix"}


def test_regression_targets_mix_linearly():
    x = flat_images()
    y = torch.linspace(-2.0, 3.0, N)
    out, targets = augment(num_classes=0, mixup=0.5)(x, y)
    assert targets.shape == (N,) and targets.dtype == torch.float32
    lam = (targets - y.roll(1)) / (y - y.roll(1))
    assert torch.allclose(lam, lam[:1].expand(N), atol=1e-5)
    unit = as_unit(x)
    torch.testing.assert_close(out, lam[0] * unit + (1 - lam[0]) * unit.roll(1, 0))


def test_no_mixing_keeps_integer_labels():
    y = labels()
    _out, targets = augment(hflip=0.5)(flat_images(), y)
    assert targets is y and targets.dtype == torch.int64


def test_helpers():
    y = torch.tensor([0, 2, 1])
    assert torch.equal(soft_targets(y, num_classes=3), torch.eye(3)[y])
    with pytest.raises(TypeError):
        soft_targets(y.float(), num_classes=3)
    assert torch.equal(soft_targets(torch.tensor([1.5, 2.0]), num_classes=0), torch.tensor([1.5, 2.0]))
    weight = torch.tensor([1.0, 0.5, 0.0])
    torch.testing.assert_close(mix_targets(torch.tensor([1.0, 2.0, 4.0]), weight), torch.tensor([1.0, 1.5, 2.0]))
    images = torch.rand(3, 1, 2, 2)
    mixed, _ = mixup(images, torch.eye(3), lam=0.25)
    torch.testing.assert_close(mixed, 0.25 * images + 0.75 * images.roll(1, 0))

