"""Training augmentation of whole batches on the device, with randomness drawn per image.

Images arrive as a uint8 batch already on the device (the dataset lives there, as in
airbench). Every per-image parameter is drawn for the whole batch at once from one seeded
``torch.Generator`` on that device and applied through masks, gathers or a single
``grid_sample``, so no Python code runs per image. Order within a batch:

1. integer crop after zero padding, and flips: one gather per axis on uint8, exact copies;
2. one affine warp per image for resized crop + rotation + translation + zoom (one resample);
3. colour jitter on [0, 1] floats: brightness, contrast, saturation, hue, in that fixed order
   (torchvision shuffles the order per call; a fixed order keeps the batch one pass per op);
4. normalization with the dataset mean and std;
5. random erasing, filled with zeros in normalized space, i.e. the dataset's mean colour:
   torchvision's default ``value=0`` that the CIFAR-10 ResNet-18 recipe (reported at 94.83%) used,
   and it draws no per-pixel noise for the whole batch;
6. mixup or cutmix (``mix.py``), which turns integer labels into soft targets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from resnetlab.data.mix import box_mask, cutmix, mixup, soft_targets

# Attempts per image before falling back, as torchvision's RandomResizedCrop/RandomErasing.
_TRIES = 10
_ERASE_AREA = (0.02, 0.33)
_ERASE_RATIO = (0.3, 3.3)
# ITU-R 601 luma, the grey that torchvision's contrast and saturation blend towards.
_LUMA = (0.299, 0.587, 0.114)


def normalize(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """uint8 images (N, C, H, W) as float32 ``(x / 255 - mean) / std``: the evaluation path."""
    _check_uint8(images, channels=len(mean))
    scale, shift = _standardizing(*_channel_stats(mean, std, device=images.device))
    return _standardize(images.to(torch.float32), scale / 255, shift)


@dataclass(frozen=True)
class AugmentSettings:
    """Which random ops run and how strongly (probabilities, ranges, Beta alphas); all off by default."""

    enabled: bool = True  # the master switch: False turns every op off
    hflip: float = 0.0
    vflip: float = 0.0
    crop_padding: int = 0
    resized_crop: bool = False
    resized_crop_scale: tuple[float, float] = (0.08, 1.0)
    resized_crop_ratio: tuple[float, float] = (0.75, 1.3333)
    rotation: float = 0.0  # degrees
    translate: float = 0.0  # fraction of the size
    scale: tuple[float, float] = (1.0, 1.0)
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0
    color_jitter: bool = True  # switch for the four above
    erasing: float = 0.0
    mixup: float = 0.0
    cutmix: float = 0.0


class BatchAugment:
    """Random augmentation of uint8 batches; the keyword arguments are :class:`AugmentSettings`'s fields.

    ``num_classes`` sizes the soft targets of mixup/cutmix (0 for regression targets, which
    are mixed linearly). ``state_dict()`` holds the random state, so a resumed run draws the
    same augmentations as an uninterrupted one.
    """

    def __init__(self, *, num_classes: int, mean: Sequence[float], std: Sequence[float],
                 device: torch.device | str = "cpu", seed: int = 0, **settings: Any) -> None:
        try:
            opts = AugmentSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()})
        except TypeError as exc:
            raise TypeError(f"BatchAugment: {exc}") from None
        _check_settings(opts)
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0 (0: regression), got {num_classes}")
        self.opts = opts
        self.num_classes = num_classes
        self.device = torch.device(device)
        self._scale, self._shift = _standardizing(*_channel_stats(mean, std, device=self.device))
        self._uint8_scale = self._scale / 255  # straight from uint8 when no op needs [0, 1] pixels
        self._generator = torch.Generator(device=self.device)
        self._generator.manual_seed(seed)
        # Per-batch scalars (mixup or cutmix, the Beta-drawn lambda) come from a host generator:
        # drawing them on the device would need a device-to-host sync every batch to branch on.
        self._host = np.random.default_rng(seed)
        self._ops = _active_ops(opts)

    # ------------------------------------------------------------------ public face

    @property
    def enabled(self) -> bool:
        """Whether any random op runs; when not, a call only normalizes."""
        return bool(self._ops)

    @property
    def is_identity(self) -> bool:
        return not self._ops

    def summary(self) -> str:
        """One line naming the active ops, for the configuration banner."""
        return ", ".join(word for words in self._ops.values() for word in words) if self._ops else "off"

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self._generator.get_state(), "host": self._host.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._generator.set_state(state["generator"].cpu())
        self._host.bit_generator.state = state["host"]

    def __call__(self, images: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """Augmented, normalized float32 images and the targets (soft when a batch was mixed)."""
        _check_uint8(images, channels=self._scale.shape[1])
        here, there = images.device, self.device
        if here.type != there.type or (there.index is not None and here.index != there.index):
            raise ValueError(f"images are on {here} but the augmentation draws on {there}")
        ops = self._ops
        x = images
        if "crop" in ops or "hflip" in ops or "vflip" in ops:
            x = self._crop_and_flip(x)
        if "affine" in ops or "jitter" in ops:  # these work on [0, 1] pixels
            x = _to_unit(x)
            if "affine" in ops:
                x = self._affine(x)
            if "jitter" in ops:
                x = self._jitter(x)
            x = _standardize(x, self._scale, self._shift)
        else:  # uint8 to standardized floats in two passes, as normalize() does for evaluation
            x = _standardize(x.to(torch.float32), self._uint8_scale, self._shift)
        if "erasing" in ops:
            x = self._erase(x)
        if "mix" in ops:
            x, targets = self._mix(x, targets)
        return x, targets

    # ------------------------------------------------------------------ ops

    def _crop_and_flip(self, x: Tensor) -> Tensor:
        """Crop after zero padding and flips, on uint8: exact pixel copies.

        Per axis, output pixel ``j`` reads padded pixel ``offset + j``, or ``offset + size - 1 - j``
        in a flipped image. Small images go as one gather per axis over the batch; large ones on the
        CPU as one strided copy per image, several times faster there than a gather (which reads an
        index per pixel), while at 32 px the per-image Python costs more than the gather.
        """
        opts, ops = self.opts, self._ops
        n = len(x)
        pad = opts.crop_padding if "crop" in ops else 0
        draws = []  # per axis (dim, flips or None, offsets or None), drawn in this order for either path
        for dim, flip_p in ((2, opts.vflip if "vflip" in ops else 0.0), (3, opts.hflip if "hflip" in ops else 0.0)):
            if pad or flip_p:
                flip = self._rand(n) < flip_p if flip_p else None
                draws.append((dim, flip, self._randint(n, 2 * pad + 1) if pad else None))
        if x.device.type == "cpu" and x.shape[2] * x.shape[3] >= _PER_IMAGE_PIXELS:
            return _shift_and_flip_each(x, draws, pad)
        if pad:
            x = F.pad(x, (pad, pad, pad, pad))
        for dim, flip, offset in draws:
            size = x.shape[dim] - 2 * pad
            index = torch.arange(size, device=x.device).expand(n, size)
            if flip is not None:
                index = torch.where(flip.unsqueeze(1), index.flip(1), index)  # (N, size): small
            if offset is not None:
                index = index + offset.unsqueeze(1)
            view, out = [n, 1, 1, 1], list(x.shape)
            view[dim] = out[dim] = size
            x = x.gather(dim, index.reshape(view).expand(out))
        return x

    def _affine(self, x: Tensor) -> Tensor:
        """Resized crop, rotation, translation and zoom as one warp: a single resample per image."""
        opts = self.opts
        n, _, h, w = x.shape
        affine, crop = {}, {}
        if opts.rotation > 0 or opts.translate > 0 or tuple(opts.scale) != (1.0, 1.0):
            affine = {
                "angle": torch.deg2rad(self._uniform(n, -opts.rotation, opts.rotation)),
                "zoom": self._uniform(n, *opts.scale),
                "shift": self._uniform(n, -opts.translate, opts.translate, 2)
                * torch.tensor([w, h], dtype=torch.float32, device=x.device),
            }
        if opts.resized_crop:
            crop = dict(zip(("crop_size", "crop_centre"), self._resized_crop_boxes(n, h, w)))
        return warp(x, warp_theta(n, h, w, device=x.device, **affine, **crop))

    def _resized_crop_boxes(self, n: int, h: int, w: int) -> tuple[Tensor, Tensor]:
        """Crop sizes (N, 2) and centres (N, 2) as (x, y) in centred pixel units.

        Like torchvision: up to 10 draws of area and log-aspect per image, the first that fits
        wins; with none, the largest centred crop whose aspect is in range. Sizes stay real-valued
        because the affine warp needs no whole pixels.
        """
        opts = self.opts
        area = self._uniform(n, *opts.resized_crop_scale, _TRIES) * (h * w)
        log_lo, log_hi = (math.log(r) for r in opts.resized_crop_ratio)
        aspect = self._uniform(n, log_lo, log_hi, _TRIES).exp()
        size = torch.stack([(area * aspect).sqrt(), (area / aspect).sqrt()], dim=-1)  # (N, tries, 2)
        fits = (size[..., 0] <= w) & (size[..., 1] <= h)
        first = fits.to(torch.uint8).argmax(dim=1)
        size = size[torch.arange(n, device=size.device), first]
        free = torch.tensor([w, h], dtype=torch.float32, device=size.device) - size
        centre = (self._rand(n, 2) - 0.5) * free

        ratio = min(max(w / h, opts.resized_crop_ratio[0]), opts.resized_crop_ratio[1])
        fallback = torch.tensor([min(w, h * ratio), min(h, w / ratio)], dtype=torch.float32, device=size.device)
        found = fits.any(dim=1, keepdim=True)
        return torch.where(found, size, fallback), torch.where(found, centre, 0.0)

    def _jitter(self, x: Tensor) -> Tensor:
        """Colour jitter of [0, 1] images in place; saturation and hue only for 3 channels."""
        opts = self.opts
        n, c = x.shape[:2]
        if opts.brightness > 0:
            x.mul_(self._factor(n, opts.brightness)).clamp_(0, 1)
        if opts.contrast > 0:
            f = self._factor(n, opts.contrast)
            mean = _grey(x).mean(dim=(1, 2, 3), keepdim=True)
            x.mul_(f).add_((1 - f) * mean).clamp_(0, 1)
        if c == 3 and opts.saturation > 0:
            f = self._factor(n, opts.saturation)
            grey = _grey(x)
            x.mul_(f).add_((1 - f) * grey).clamp_(0, 1)
        if c == 3 and opts.hue > 0:
            x = shift_hue(x, self._uniform(n, -opts.hue, opts.hue))
        return x

    def _erase(self, x: Tensor) -> Tensor:
        """Zero one rectangle per chosen image, sampled as torchvision's RandomErasing."""
        n, _, h, w = x.shape
        area = self._uniform(n, *_ERASE_AREA, _TRIES) * (h * w)
        aspect = self._uniform(n, math.log(_ERASE_RATIO[0]), math.log(_ERASE_RATIO[1]), _TRIES).exp()
        box_h, box_w = (area * aspect).sqrt().round(), (area / aspect).sqrt().round()
        fits = (box_h < h) & (box_w < w)
        first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)
        box_h, box_w = box_h.gather(1, first).squeeze(1), box_w.gather(1, first).squeeze(1)
        chosen = (self._rand(n) < self.opts.erasing) & fits.any(dim=1)
        top = (self._rand(n) * (h - box_h + 1)).floor()
        left = (self._rand(n) * (w - box_w + 1)).floor()
        return x.mul_(1 - box_mask(top, top + box_h, left, left + box_w, h, w, where=chosen))

    def _mix(self, x: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        opts = self.opts
        use_cutmix = opts.cutmix > 0 and (opts.mixup == 0 or self._host.random() < 0.5)
        alpha = opts.cutmix if use_cutmix else opts.mixup
        lam = float(self._host.beta(alpha, alpha))
        soft = soft_targets(targets, num_classes=self.num_classes)
        if use_cutmix:
            return cutmix(x, soft, lam=lam, generator=self._generator)
        return mixup(x, soft, lam=lam)

    # ------------------------------------------------------------------ random draws

    def _rand(self, *shape: int) -> Tensor:
        return torch.rand(*shape, generator=self._generator, device=self.device)

    def _uniform(self, n: int, lo: float, hi: float, *extra: int) -> Tensor:
        return self._rand(n, *extra).mul_(hi - lo).add_(lo)

    def _randint(self, n: int, high: int) -> Tensor:
        return torch.randint(0, high, (n,), generator=self._generator, device=self.device)

    def _factor(self, n: int, strength: float) -> Tensor:
        """Per-image jitter factors in [max(0, 1 - strength), 1 + strength], shaped to broadcast."""
        return self._uniform(n, max(0.0, 1.0 - strength), 1.0 + strength).view(n, 1, 1, 1)


def warp_theta(n: int, h: int, w: int, *, device: torch.device | str = "cpu",
               angle: Tensor | None = None, zoom: Tensor | None = None, shift: Tensor | None = None,
               crop_size: Tensor | None = None, crop_centre: Tensor | None = None) -> Tensor:
    """``grid_sample`` maps (N, 2, 3) for: a crop resized to the whole image, then a rotation
    by ``angle`` radians (counter-clockwise on screen, as torchvision), a ``zoom`` about the
    centre and a ``shift``. Sizes, centres and shifts are (N, 2) as (x, y) in pixels, centres
    relative to the image centre; unset parts are the identity.

    The map takes each output pixel to the source point it samples, built in pixel units (so a
    rotation stays a rotation on non-square images) and then rescaled to [-1, 1] coordinates.
    """
    matrix = torch.eye(2, device=device).repeat(n, 1, 1)
    offset = torch.zeros(n, 2, device=device)
    if angle is not None or zoom is not None or shift is not None:
        # Content moves as p_out = zoom * R @ p_in + shift; its inverse samples the source.
        angle = torch.zeros(n, device=device) if angle is None else angle
        zoom = torch.ones(n, device=device) if zoom is None else zoom
        cos, sin = angle.cos() / zoom, angle.sin() / zoom
        matrix = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
        if shift is not None:
            offset = -(matrix @ shift.unsqueeze(-1)).squeeze(-1)
    if crop_size is not None:
        # The crop is applied to the image first, so its map comes last on the way back.
        fraction = crop_size / torch.tensor([w, h], dtype=torch.float32, device=device)
        matrix = fraction.unsqueeze(-1) * matrix
        offset = fraction * offset + (0 if crop_centre is None else crop_centre)
    half = torch.tensor([w / 2, h / 2], dtype=torch.float32, device=device)
    return torch.cat([matrix * half / half.unsqueeze(-1), (offset / half).unsqueeze(-1)], dim=2)


def warp(x: Tensor, theta: Tensor) -> Tensor:
    """Bilinear resample of float images by ``warp_theta`` maps; black outside the source."""
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # Border padding keeps the outermost pixels from fading towards zero when a sample falls
    # between the last pixel centre and the image edge; points outside the image are then set
    # to black, torchvision's fill=0 for rotations and translations.
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    inside = (grid.abs() <= 1).all(dim=-1, keepdim=True).permute(0, 3, 1, 2)
    return out.mul_(inside)  # multiplying by the mask is much faster than masked_fill_ on CPU


def shift_hue(x: Tensor, shift: Tensor) -> Tensor:
    """Rotate the HSV hue of RGB images in [0, 1] (N, 3, H, W) by ``shift`` turns (N,).

    Value (the largest channel) and chroma (largest minus smallest) are kept, so only the hue
    is computed, in sextants [0, 6) from whichever channel is largest. Channel k then sits
    below the value by chroma times clamp(d - 1, 0, 1), d being the hue's distance around
    the circle from the channel's own hue (red 0, green 2, blue 4). Masks are blended with
    ``lerp`` because ``torch.where`` and ``remainder`` are several times slower on CPU.
    """
    value = x.amax(dim=1, keepdim=True)
    chroma = value - x.amin(dim=1, keepdim=True)
    inverse = chroma.clamp_min(1e-12).reciprocal_()  # grey pixels: numerators are 0
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    hue = torch.lerp((r - g).mul_(inverse).add_(4), (b - r).mul_(inverse).add_(2), (value == g).to(x.dtype))
    hue = torch.lerp(hue, (g - b).mul_(inverse), (value == r).to(x.dtype))
    hue.add_(6 * shift.view(-1, 1, 1, 1))
    hue.sub_(hue.div(6).floor_().mul_(6))  # into [0, 6)
    # |hue - centre| is in [0, 6); the distance around the circle is 3 - | |hue - centre| - 3 |,
    # so clamp(distance - 1, 0, 1) = clamp(2 - | |hue - centre| - 3 |, 0, 1). In place: no copies.
    out = (hue - torch.tensor([0.0, 2.0, 4.0], device=x.device).view(1, 3, 1, 1)).abs_()
    out.sub_(3).abs_().neg_().add_(2).clamp_(0, 1)
    return out.mul_(chroma).neg_().add_(value)


# ---------------------------------------------------------------------- helpers


def _active_ops(opts: AugmentSettings) -> dict[str, list[str]]:
    """Active op groups mapped to their summary words; empty when the master switch is off."""
    if not opts.enabled:
        return {}
    groups = {
        "crop": [f"crop pad {opts.crop_padding}"] if opts.crop_padding > 0 else [],
        "hflip": [f"hflip {opts.hflip:g}"] if opts.hflip > 0 else [],
        "vflip": [f"vflip {opts.vflip:g}"] if opts.vflip > 0 else [],
        "affine": [text for active, text in (
            (opts.resized_crop, f"resized crop {opts.resized_crop_scale[0]:g}-{opts.resized_crop_scale[1]:g}"),
            (opts.rotation > 0, f"rotate ±{opts.rotation:g}°"),
            (opts.translate > 0, f"translate ±{opts.translate:g}"),
            (tuple(opts.scale) != (1.0, 1.0), f"zoom {opts.scale[0]:g}-{opts.scale[1]:g}"),
        ) if active],
        "jitter": [f"{name} {getattr(opts, name):g}" for name in ("brightness", "contrast", "saturation", "hue")
                   if getattr(opts, name) > 0 and opts.color_jitter],
        "erasing": [f"erasing {opts.erasing:g}"] if opts.erasing > 0 else [],
        "mix": [" or ".join(f"{name} α={getattr(opts, name):g}" for name in ("mixup", "cutmix")
                            if getattr(opts, name) > 0)] if opts.mixup > 0 or opts.cutmix > 0 else [],
    }
    return {key: words for key, words in groups.items() if words}


def _check_settings(opts: AugmentSettings) -> None:
    """Range checks of the pairs (the config's validate_config says the same in its keys' words)."""
    pairs = {"resized_crop_scale": opts.resized_crop_scale, "resized_crop_ratio": opts.resized_crop_ratio,
             "scale": opts.scale}
    for name, pair in pairs.items():
        if len(pair) != 2 or not 0 < pair[0] <= pair[1]:
            raise ValueError(f"{name} must be (low, high) with 0 < low <= high, got {list(pair)}")
    if opts.resized_crop_scale[1] > 1:
        raise ValueError(f"resized_crop_scale is a share of the area, at most 1; got {list(opts.resized_crop_scale)}")


def _check_uint8(images: Tensor, *, channels: int) -> None:
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise TypeError(f"expected uint8 images (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
    if images.shape[1] != channels:
        raise ValueError(f"images have {images.shape[1]} channels but mean/std give {channels}")


def _channel_stats(mean: Sequence[float], std: Sequence[float], *,
                   device: torch.device) -> tuple[Tensor, Tensor]:
    """(1, C, 1, 1) tensors on the device, checked on the host (no device sync)."""
    mean, std = [float(m) for m in mean], [float(s) for s in std]
    if len(mean) != len(std) or not mean:
        raise ValueError(f"mean and std need one value per channel each, got {len(mean)} and {len(std)}")
    if min(std) <= 0:
        raise ValueError(f"std must be positive, got {std}")
    shape = (1, len(mean), 1, 1)
    return (torch.tensor(mean, dtype=torch.float32).view(shape).to(device),
            torch.tensor(std, dtype=torch.float32).view(shape).to(device))


def _to_unit(images: Tensor) -> Tensor:
    return images.to(torch.float32).mul_(1 / 255)


def _standardizing(mean: Tensor, std: Tensor) -> tuple[Tensor, Tensor]:
    """``(scale, shift)`` with ``x * scale + shift == (x - mean) / std``."""
    return 1 / std, -mean / std


def _standardize(x: Tensor, scale: Tensor, shift: Tensor) -> Tensor:
    # A multiply and an add in place: dividing by a broadcast (1, C, 1, 1) tensor is several times
    # slower on the CPU, and the uint8 data path spends most of its time here.
    return x.mul_(scale).add_(shift)


# Where one copy per image starts to beat a gather over the batch on the CPU (one thread,
# benchmarks/crop_flip.py): from about 48 px with a crop and 96 px with flips alone; at 224 px a
# crop with flips takes 0.47 ms per 32 images against 7.3 ms as gathers.
_PER_IMAGE_PIXELS = 64 * 64


def _shift_and_flip_each(x: Tensor, draws: list[tuple[int, Tensor | None, Tensor | None]], pad: int) -> Tensor:
    """What ``_crop_and_flip``'s gathers make, one image at a time: flipping first, a crop of the padded
    image with offset ``o`` is a shift by ``o - pad`` (by ``pad - o`` of the mirror), zeros outside."""
    n = len(x)
    out = torch.zeros_like(x) if pad else torch.empty_like(x)
    flipped = [[False] * n, [False] * n]  # per axis (rows, columns), per image
    shifts = [[0] * n, [0] * n]
    for dim, flip, offset in draws:
        axis = dim - 2
        if flip is not None:
            flipped[axis] = flip.tolist()
        moved = (offset - pad).tolist() if offset is not None else [0] * n
        shifts[axis] = [-m if f else m for m, f in zip(moved, flipped[axis], strict=True)]
    h, w = x.shape[2], x.shape[3]
    for i in range(n):
        dims = [d for d, chosen in ((1, flipped[0][i]), (2, flipped[1][i])) if chosen]
        source = x[i].flip(dims) if dims else x[i]
        dy, dx = shifts[0][i], shifts[1][i]
        if abs(dy) >= h or abs(dx) >= w:  # padding wider than the image: shifted out entirely, all zeros
            continue
        out[i, :, max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)] = \
            source[:, max(0, dy):h - max(0, -dy), max(0, dx):w - max(0, -dx)]
    return out


def _grey(x: Tensor) -> Tensor:
    """Luma (N, 1, H, W) of RGB images; the channel mean for other channel counts."""
    if x.shape[1] != 3:
        return x.mean(dim=1, keepdim=True)
    r, g, b = x.unbind(dim=1)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)
