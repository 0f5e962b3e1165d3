"""Properties of the batched augmentation: each op does what it says, per image, reproducibly."""

from __future__ import annotations

import colorsys
import io

import pytest
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from resnetlab.data.augment import BatchAugment, normalize, shift_hue, warp, warp_theta

# The CIFAR-10 ResNet-18 recipe (cifar-resnet18 preset), plus every op it leaves off, so one config
# exercises all code paths.
EVERYTHING = {"hflip": 0.5, "vflip": 0.2, "crop_padding": 4, "resized_crop": True, "rotation": 15, "translate": 0.1,
                  "scale": [0.9, 1.1], "brightness": 0.3, "contrast": 0.3, "saturation": 0.3, "hue": 0.1, "erasing": 0.3,
                  "mixup": 0.2, "cutmix": 1.0}

# 0.5 * 255 is no whole number, so no 8-bit pixel normalizes to exactly 0 (the erasing fill).
MEAN, STD = 0.5, 0.25


def augment(channels: int = 3, *, seed: int = 0, num_classes: int = 10, unit: bool = False,
            **fields: object) -> BatchAugment:
    """A BatchAugment; ``unit`` uses mean 0 and std 1 so outputs are the [0, 1] pixels."""
    mean, std = ([0.0] * channels, [1.0] * channels) if unit else ([MEAN] * channels, [STD] * channels)
    return BatchAugment(**fields, num_classes=num_classes, mean=mean, std=std, seed=seed)


def norm(x: torch.Tensor) -> torch.Tensor:
    """The evaluation path with the statistics ``augment`` uses."""
    return normalize(x, [MEAN] * x.shape[1], [STD] * x.shape[1])


def images(n: int = 8, c: int = 3, h: int = 16, w: int = 16, *, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, c, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def labels(n: int = 8) -> torch.Tensor:
    return torch.arange(n) % 10


def to_uint8(unit: torch.Tensor) -> torch.Tensor:
    return (unit * 255).round().to(torch.uint8)


# ---------------------------------------------------------------------- switch and normalization


def test_normalize_matches_the_formula():
    x = images()
    mean, std = [0.49, 0.48, 0.45], [0.25, 0.24, 0.26]
    as_column = lambda values: torch.tensor(values, dtype=torch.float64).view(1, 3, 1, 1)
    expected = (x.double() / 255 - as_column(mean)) / as_column(std)
    out = normalize(x, mean, std)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("fields", [dict(enabled=False, **EVERYTHING), {}])
def test_disabled_or_empty_config_only_normalizes(fields):
    aug = augment(**fields)
    x, y = images(), labels()
    out, targets = aug(x, y)
    assert aug.is_identity and not aug.enabled and aug.summary() == "off"
    assert torch.equal(out, norm(x))
    assert targets is y


def test_summary_names_the_active_ops():
    text = augment(hflip=0.5, crop_padding=4, rotation=15, erasing=0.3, mixup=0.2).summary()
    for word in ("hflip 0.5", "crop pad 4", "rotate ±15°", "erasing 0.3", "mixup α=0.2"):
        assert word in text
    assert "vflip" not in text and "cutmix" not in text


def test_bad_inputs_are_rejected():
    with pytest.raises(TypeError):
        augment(hflip=1.0)(images().float(), labels())
    with pytest.raises(ValueError, match="channels"):
        augment(channels=1, hflip=1.0)(images(c=3), labels())
    with pytest.raises(ValueError, match="scale must be"):
        augment(scale=[1.2, 0.8])
    with pytest.raises(ValueError, match="std"):
        BatchAugment(num_classes=10, mean=[0.5], std=[0.0])


# ---------------------------------------------------------------------- flips and crop


@pytest.mark.parametrize("field, dim", [("hflip", -1), ("vflip", -2)])
def test_flip_with_probability_one_mirrors_and_twice_is_identity(field, dim):
    aug = augment(**{field: 1.0})
    x = images()
    ref = norm(x)
    assert torch.equal(aug(x, labels())[0], ref.flip(dim))
    assert torch.equal(aug(x.flip(dim), labels())[0], ref)


def test_flips_are_drawn_per_image():
    x = images(1).expand(64, -1, -1, -1)
    out = to_uint8(augment(unit=True, hflip=0.5)(x, labels(64))[0])
    flipped = (out == x.flip(-1)).flatten(1).all(1)
    kept = (out == x).flatten(1).all(1)
    assert torch.all(flipped ^ kept)  # each image is either itself or its mirror
    assert 10 < flipped.sum() < 54


def shifted(image: torch.Tensor, dy: int, dx: int, pad: int) -> torch.Tensor:
    """Output pixel (i, j) = input pixel (i + dy, j + dx), zeros outside: a crop of the padded image."""
    h, w = image.shape[-2:]
    return F.pad(image, (pad, pad, pad, pad))[..., pad + dy:pad + dy + h, pad + dx:pad + dx + w]


@pytest.mark.parametrize("flip", [False, True])
def test_crop_with_padding_is_a_shifted_copy_per_image(flip):
    pad, n = 3, 32
    rows, cols = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    # Channels encode the source row and column, all non-zero so the padding stands out.
    pattern = torch.stack([rows + 1, cols + 1, (rows * 16 + cols) % 250 + 1]).to(torch.uint8)
    x = pattern.expand(n, -1, -1, -1)
    flips = {"hflip": 1.0, "vflip": 1.0} if flip else {}
    out = to_uint8(augment(unit=True, crop_padding=pad, **flips)(x, labels(n))[0])
    if flip:  # crop and flips share one gather per axis; the result is a shift of the mirror
        pattern = pattern.flip(-1, -2)
    assert out.shape == x.shape
    shifts = set()
    for image in out:
        found = [(dy, dx) for dy in range(-pad, pad + 1) for dx in range(-pad, pad + 1)
                 if torch.equal(image, shifted(pattern, dy, dx, pad))]
        assert len(found) == 1
        shifts.add(found[0])
    assert len(shifts) > 8  # different images got different crops
    for axis in (0, 1):  # shifts reach both sides
        assert min(shift[axis] for shift in shifts) < 0 < max(shift[axis] for shift in shifts)


# ---------------------------------------------------------------------- the affine warp


def test_affine_warp_with_identity_parameters_is_identity():
    # A resized crop of the full area at aspect 1 runs the whole warp with an identity map.
    aug = augment(resized_crop=True, resized_crop_scale=[1.0, 1.0], resized_crop_ratio=[1.0, 1.0])
    assert "affine" in aug._ops
    x = images()
    torch.testing.assert_close(aug(x, labels())[0], norm(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("h, w", [(16, 16), (12, 20)])
def test_resized_crop_keeps_shape_and_stays_inside_the_image(h, w):
    # Constant images stay constant (no black edge) only if every sample lands inside the image.
    colours = torch.randint(1, 256, (16, 3, 1, 1), dtype=torch.uint8)
    x = colours.expand(-1, -1, h, w).contiguous()
    out = augment(unit=True, resized_crop=True)(x, labels(16))[0]
    assert out.shape == (16, 3, h, w)
    torch.testing.assert_close(out, x.float() / 255, atol=1e-5, rtol=0)


def test_resized_crop_falls_back_to_the_largest_centred_crop_in_range():
    # No 2:1 crop of the full area fits a square, so every image gets the centred 16x8 crop
    # (rows 4-11) stretched to 16x16: columns unchanged, rows sampled at half speed.
    rows, cols = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    x = torch.stack([rows * 10, cols * 10, rows * 0]).to(torch.uint8).expand(4, -1, -1, -1)
    out = augment(unit=True, resized_crop=True, resized_crop_scale=[1.0, 1.0],
                  resized_crop_ratio=[2.0, 2.0])(x, labels(4))[0] * 255
    torch.testing.assert_close(out[:, 1], x[:, 1].float(), atol=1e-3, rtol=0)
    source_rows = (torch.arange(16) - 7.5) / 2 + 7.5  # pixel indices sampled
    expected = (source_rows * 10).view(1, 16, 1).expand(4, 16, 16)
    torch.testing.assert_close(out[:, 0], expected, atol=1e-3, rtol=0)


def test_resized_crop_zooms_differently_per_image():
    x = images(1).expand(8, -1, -1, -1)
    out = augment(resized_crop=True, resized_crop_scale=[0.1, 0.5])(x, labels())[0]
    assert not torch.allclose(out[0], norm(x[:1])[0], atol=0.1)
    assert all(not torch.allclose(out[0], other, atol=1e-3) for other in out[1:])


def centroid(image: torch.Tensor) -> torch.Tensor:
    """Intensity-weighted (row, col) of a (H, W) image, in pixel indices."""
    rows, cols = torch.meshgrid(torch.arange(image.shape[0]), torch.arange(image.shape[1]), indexing="ij")
    return torch.stack([(rows * image).sum(), (cols * image).sum()]) / image.sum()


def blob(h: int, w: int, row: int, col: int) -> torch.Tensor:
    """One image (1, 1, H, W) that is black except a 2x2 white square at (row, col)."""
    x = torch.zeros(1, 1, h, w, dtype=torch.uint8)
    x[..., row:row + 2, col:col + 2] = 255
    return x


def test_zoom_scales_distances_from_the_centre():
    # A 2x2 square whose centre is 2 px right of and below the image centre (pixel index 11.5).
    out = augment(1, unit=True, scale=[2.0, 2.0])(blob(24, 24, 13, 13), labels(1))[0][0, 0]
    torch.testing.assert_close(centroid(out), torch.tensor([11.5 + 4, 11.5 + 4]), atol=0.01, rtol=0)
    assert 12 < out.sum() < 20  # area grew about 4 times (from 4 px)


def test_rotation_keeps_distances_on_non_square_images():
    # A rotation in grid_sample's [-1, 1] coordinates would stretch a 12x24 image: distances
    # from the centre would change with the angle.
    n, h, w = 32, 12, 24
    x = blob(h, w, 5, 15).expand(n, -1, -1, -1)  # centre (5.5, 15.5): 4 px right of (5.5, 11.5)
    out = augment(1, unit=True, rotation=60)(x, labels(n))[0][:, 0]
    centres = torch.stack([centroid(image) for image in out]) - torch.tensor([5.5, 11.5])
    torch.testing.assert_close(centres.norm(dim=1), torch.full((n,), 4.0), atol=0.1, rtol=0)
    angles = torch.atan2(-centres[:, 0], centres[:, 1]).rad2deg()  # counter-clockwise on screen
    assert angles.abs().max() <= 60.5 and angles.std() > 15


def test_one_warp_equals_the_crop_then_the_affine():
    # Bilinear sampling reproduces a linear ramp exactly, so one composed warp and two warps in
    # a row must agree wherever neither sampled outside the image.
    n, h, w = 4, 16, 24
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    x = torch.stack([rows / h, cols / w, (rows + cols) / (h + w)]).float().expand(n, -1, -1, -1)
    crop = {"crop_size": torch.tensor([[14.0, 9.0], [20.0, 12.0], [10.0, 10.0], [24.0, 16.0]]),
                "crop_centre": torch.tensor([[2.0, -1.0], [-1.5, 0.5], [4.0, 2.5], [0.0, 0.0]])}
    affine = {"angle": torch.tensor([0.1, -0.2, 0.25, 0.0]), "zoom": torch.tensor([1.1, 0.9, 1.0, 1.2]),
                  "shift": torch.tensor([[1.5, -2.0], [-1.0, 0.5], [2.0, 2.0], [-3.0, 1.0]])}
    once = warp(x, warp_theta(n, h, w, **crop, **affine))
    twice = warp(warp(x, warp_theta(n, h, w, **crop)), warp_theta(n, h, w, **affine))
    centre = (slice(None), slice(None), slice(5, 11), slice(8, 16))
    assert (twice[centre] > 0).all()
    torch.testing.assert_close(once[centre], twice[centre], atol=1e-4, rtol=0)


@pytest.mark.parametrize("shift", [(0.0, 0.0), (3.0, 1.0)])
def test_warp_theta_rotates_counter_clockwise_then_shifts(shift):
    # A quarter turn takes the point 4 px right of the centre to 4 px above it (y points down);
    # the shift then moves it in output pixels, as torchvision's RandomAffine.
    theta = warp_theta(1, 12, 24, angle=torch.tensor([torch.pi / 2]), shift=torch.tensor([shift]))
    out = warp(blob(12, 24, 5, 15).float(), theta)[0, 0]
    expected = torch.tensor([5.5 - 4 + shift[1], 11.5 + shift[0]])
    torch.testing.assert_close(centroid(out), expected, atol=0.01, rtol=0)


def test_uncovered_area_is_black_and_the_rest_unchanged():
    # With a constant image, border padding plus the outside mask give exactly two values.
    x = torch.full((16, 3, 16, 16), 200, dtype=torch.uint8)
    out = augment(unit=True, translate=0.25, rotation=20)(x, labels(16))[0]
    black = out == 0
    torch.testing.assert_close(out[~black], torch.full_like(out[~black], 200 / 255), atol=1e-5, rtol=0)
    assert black.flatten(1).any(1).sum() >= 12 and black.float().mean() < 0.5


def test_translation_moves_content_within_range():
    n, h, w = 32, 16, 16
    x = blob(h, w, 7, 7).expand(n, -1, -1, -1)
    out = augment(1, unit=True, translate=0.25)(x, labels(n))[0][:, 0]
    moves = torch.stack([centroid(image) for image in out]) - 7.5
    assert moves.abs().max() <= 0.25 * 16 + 0.05
    assert moves.std(dim=0).min() > 1  # per-image, in both axes


# ---------------------------------------------------------------------- colour jitter


def test_brightness_scales_each_image_by_its_own_factor():
    x = torch.randint(60, 190, (16, 3, 8, 8), dtype=torch.uint8)
    out = augment(unit=True, brightness=0.3)(x, labels(16))[0]
    ratio = (out / (x.float() / 255)).flatten(1)
    factor = ratio.mean(1)
    torch.testing.assert_close(ratio, factor[:, None].expand_as(ratio), atol=1e-4, rtol=0)
    assert factor.min() >= 0.7 - 1e-4 and factor.max() <= 1.3 + 1e-4 and factor.std() > 0.05


def test_contrast_blends_every_channel_towards_the_grey_mean():
    # Channels with different means (a reddish image), no clipping at factor 1.3.
    x = torch.randint(100, 156, (16, 3, 8, 8), dtype=torch.uint8)
    x[:, 0] += 40
    unit = x.float() / 255
    out = augment(unit=True, contrast=0.3)(x, labels(16))[0]
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    grey_mean = (unit * luma).sum(1, keepdim=True).mean((2, 3), keepdim=True)
    # out = f * x + (1 - f) * grey mean, with one factor f per image for all channels.
    factor = ((out - grey_mean) / (unit - grey_mean)).flatten(1)
    far = (unit - grey_mean).abs().flatten(1) > 0.05
    for f, keep in zip(factor, far):
        assert f[keep].max() - f[keep].min() < 1e-3
    assert factor.median(1).values.std() > 0.05


def test_saturation_and_hue_leave_grey_images_alone():
    grey = torch.randint(0, 256, (8, 1, 8, 8), dtype=torch.uint8).expand(-1, 3, -1, -1)
    out = augment(unit=True, saturation=0.5, hue=0.5)(grey, labels())[0]
    torch.testing.assert_close(out, grey.float() / 255, atol=1e-6, rtol=0)


def test_shift_hue_matches_colorsys():
    x = torch.rand(4, 3, 5, 5, dtype=torch.float32)
    shift = torch.tensor([0.0, 0.1, -0.37, 0.5])
    out = shift_hue(x, shift)
    expected = torch.empty_like(x)
    for i in range(4):
        for r in range(5):
            for c in range(5):
                hue, sat, val = colorsys.rgb_to_hsv(*x[i, :, r, c].tolist())
                expected[i, :, r, c] = torch.tensor(colorsys.hsv_to_rgb((hue + shift[i].item()) % 1, sat, val))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(shift_hue(x, torch.ones(4)), x, atol=1e-5, rtol=0)  # a full turn


def test_one_channel_skips_saturation_and_hue_but_not_brightness():
    x = images(c=1)
    ref = norm(x)
    assert torch.equal(augment(1, saturation=0.5, hue=0.5)(x, labels())[0], ref)
    out = augment(1, brightness=0.3, contrast=0.3, saturation=0.5, hue=0.5)(x, labels())[0]
    assert out.isfinite().all() and not torch.allclose(out, ref)


def test_jitter_output_stays_in_range():
    out = augment(unit=True, brightness=1.0, contrast=1.0, saturation=1.0, hue=0.5)(images(), labels())[0]
    assert out.isfinite().all() and out.min() >= 0 and out.max() <= 1


# ---------------------------------------------------------------------- erasing


def test_erasing_zeroes_exactly_one_rectangle_per_image():
    x = images(32)
    out = augment(erasing=1.0)(x, labels(32))[0]
    changed = out != norm(x)
    assert torch.all(out[changed] == 0)
    erased = changed.any(dim=1)  # (N, H, W)
    assert torch.equal(changed.all(dim=1), erased)  # every channel of an erased pixel
    areas = set()
    for mask in erased:
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        box = torch.zeros_like(mask)
        box[rows.min():rows.max() + 1, cols.min():cols.max() + 1] = True
        assert torch.equal(mask, box)
        areas.add(mask.sum().item() / mask.numel())
    # 2%-33% of the area before rounding the sides to whole pixels.
    assert min(areas) >= 0.01 and max(areas) <= 0.4 and len(areas) > 5


def test_erased_rectangles_are_smaller_than_the_image():
    # As torchvision: box sides below the image sides; on 6x6 many drawn boxes are near that limit.
    x = images(64, h=6, w=6)
    erased = (augment(erasing=1.0)(x, labels(64))[0] != norm(x)).any(dim=1)
    assert erased.flatten(1).any(1).sum() > 48
    assert erased.sum(1).max() < 6 and erased.sum(2).max() < 6
    assert erased.sum(1).max() == 5 or erased.sum(2).max() == 5


def test_erasing_probability_is_per_image():
    x = images(64)
    changed = augment(erasing=0.5)(x, labels(64))[0] != norm(x)
    erased = changed.flatten(1).any(1).sum()
    assert 16 < erased < 48


# ---------------------------------------------------------------------- randomness and resume


def test_identical_copies_get_different_augmentations():
    x = images(1).expand(16, -1, -1, -1)
    out = augment(**{**EVERYTHING, "mixup": 0.0, "cutmix": 0.0})(x, labels(16))[0]
    assert len({tuple(image.flatten()[::37].tolist()) for image in out}) == 16


def test_same_seed_same_output_other_seed_differs():
    x, y = images(), labels()
    first, second, other = (augment(seed=s, **EVERYTHING) for s in (7, 7, 8))
    a, b, c = first(x, y), second(x, y), other(x, y)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_state_dict_resumes_bit_exactly_through_a_checkpoint():
    x, y = images(), labels()
    running = augment(seed=3, **EVERYTHING)
    running(x, y)
    buffer = io.BytesIO()
    torch.save(running.state_dict(), buffer)
    expected = [running(x, y) for _ in range(4)]  # enough batches to see both mixup and cutmix

    buffer.seek(0)
    resumed = augment(seed=99, **EVERYTHING)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    for want in expected:
        got = resumed(x, y)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


# ---------------------------------------------------------------------- shapes and batching


@pytest.mark.parametrize("channels", [1, 2, 3])
def test_every_op_at_once_works_for_any_channel_count(channels):
    x = images(c=channels, h=12, w=20)
    out, targets = augment(channels, **EVERYTHING)(x, labels())
    assert out.shape == x.shape and out.dtype == torch.float32 and out.isfinite().all()
    assert targets.shape == (8, 10)


class CountTorchCalls(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls += 1
        return func(*args, **(kwargs or {}))


def test_work_per_batch_does_not_grow_with_the_batch():
    # A Python loop over images would make the number of torch calls grow with N.
    counts = []
    for n in (4, 512):
        aug, x = augment(seed=1, **EVERYTHING), images(n, h=32, w=32)
        with CountTorchCalls() as counter:
            out, _ = aug(x, labels(n))
        assert out.shape == x.shape
        counts.append(counter.calls)
    assert counts[0] == counts[1]


@pytest.mark.parametrize("settings", [{"hflip": 0.5}, {"vflip": 0.5, "crop_padding": 3},
                                      {"hflip": 0.5, "vflip": 0.5, "crop_padding": 4}, {"crop_padding": 2},
                                      {"hflip": 0.5, "crop_padding": 90}])  # padding wider than the image
def test_large_images_are_cropped_and_flipped_one_by_one_exactly_as_the_batched_gathers_do(settings, monkeypatch):
    from resnetlab.data import augment as module

    x = torch.randint(1, 256, (24, 3, 72, 80), dtype=torch.uint8)
    outputs = []
    for threshold in (72 * 80 + 1, 72 * 80):  # gathers, then one copy per image
        monkeypatch.setattr(module, "_PER_IMAGE_PIXELS", threshold)
        outputs.append(augment(seed=3, **settings)(x, labels(24))[0])
    assert torch.equal(outputs[0], outputs[1])
