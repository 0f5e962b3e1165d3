"""Training augmentation of whole batches on the device, with randomness drawn per image.

Images arrive as a uint8 batch already on the device (the dataset lives there, as in
airbench). Every random parameter is drawn for the whole batch at once from one seeded
``torch.Generator`` and applied through masks, gathers or a single ``grid_sample``, so no
Python code runs per image. Order within a batch:

1. integer crop after zero padding, then flips: exact pixel copies, done on uint8;
2. one affine warp per image for resized crop + rotation + translation + zoom (one resample);
3. colour jitter on [0, 1] floats: brightness, contrast, saturation, hue, in that fixed order
   (torchvision shuffles the order per call; a fixed order keeps the batch one pass per op);
4. normalization with the dataset mean and std;
5. random erasing, filled with zeros in normalized space, i.e. the dataset's mean colour:
   torchvision's default ``value=0`` that the seed 003 recipe (94.83% on CIFAR-10) used,
   and it draws no per-pixel noise for the whole batch;
6. mixup or cutmix (``mix.py``), which turns integer labels into soft targets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from resnetlab.config.schema import AugmentConfig
from resnetlab.data.mix import cutmix, mixup, soft_targets

# Attempts per image before falling back, as torchvision's RandomResizedCrop/RandomErasing.
_TRIES = 10
_ERASE_AREA = (0.02, 0.33)
_ERASE_RATIO = (0.3, 3.3)
# ITU-R 601 luma, the grey that torchvision's contrast and saturation blend towards.
_LUMA = (0.299, 0.587, 0.114)


def normalize(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """uint8 images (N, C, H, W) as float32 ``(x / 255 - mean) / std``: the evaluation path."""
    _check_uint8(images)
    mean_t, std_t = _channel_stats(mean, std, device=images.device)
    return _standardize(_to_unit(images), mean_t, std_t)


class BatchAugment:
    """Random augmentation of uint8 batches, configured by an :class:`AugmentConfig`.

    ``num_classes`` sizes the soft targets of mixup/cutmix (0 for regression targets, which
    are mixed linearly). ``state_dict()`` holds the random state, so a resumed run draws the
    same augmentations as an uninterrupted one.
    """

    def __init__(self, cfg: AugmentConfig, *, num_classes: int, mean: Sequence[float],
                 std: Sequence[float], device: torch.device | str = "cpu", seed: int = 0) -> None:
        _check_config(cfg)
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0 (0: regression), got {num_classes}")
        self.cfg = cfg
        self.num_classes = num_classes
        self.device = torch.device(device)
        self._mean, self._std = _channel_stats(mean, std, device=self.device)
        self._generator = torch.Generator(device=self.device)
        self._generator.manual_seed(seed)
        # Per-batch scalars (mixup or cutmix, the Beta-drawn lambda) come from a host generator:
        # drawing them on the device would need a device-to-host sync every batch to branch on.
        self._host = np.random.default_rng(seed)
        self._ops = _active_ops(cfg)

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
        _check_uint8(images)
        if images.device != self.device:
            raise ValueError(f"images are on {images.device} but the augmentation draws on {self.device}")
        ops = self._ops
        x = images
        if "crop" in ops:
            x = self._crop(x)
        if "hflip" in ops:
            x = self._flip(x, self.cfg.hflip, dim=-1)
        if "vflip" in ops:
            x = self._flip(x, self.cfg.vflip, dim=-2)
        x = _to_unit(x)
        if "affine" in ops:
            x = self._affine(x)
        if "jitter" in ops:
            x = self._jitter(x)
        x = _standardize(x, self._mean, self._std)
        if "erasing" in ops:
            x = self._erase(x)
        if "mix" in ops:
            x, targets = self._mix(x, targets)
        return x, targets

    # ------------------------------------------------------------------ ops

    def _crop(self, x: Tensor) -> Tensor:
        """Random crop of the zero-padded image: an integer shift, gathered rows then columns."""
        pad = self.cfg.crop_padding
        n, c, h, w = x.shape
        top = self._randint(n, 2 * pad + 1)
        left = self._randint(n, 2 * pad + 1)
        padded = F.pad(x, (pad, pad, pad, pad))
        rows = (torch.arange(h, device=x.device) + top[:, None]).view(n, 1, h, 1)
        x = padded.gather(2, rows.expand(n, c, h, w + 2 * pad))
        cols = (torch.arange(w, device=x.device) + left[:, None]).view(n, 1, 1, w)
        return x.gather(3, cols.expand(n, c, h, w))

    def _flip(self, x: Tensor, p: float, *, dim: int) -> Tensor:
        flip = self._rand(len(x)) < p
        return torch.where(flip.view(-1, 1, 1, 1), x.flip(dim), x)

    def _affine(self, x: Tensor) -> Tensor:
        """Resized crop, rotation, translation and zoom as one inverse map per image.

        The map takes an output pixel to the source point it samples, in pixel units centred
        on the image (so rotation stays a rotation on non-square images), then is rescaled to
        ``grid_sample``'s [-1, 1] coordinates.
        """
        cfg = self.cfg
        n, _, h, w = x.shape
        matrix = torch.eye(2, device=x.device).repeat(n, 1, 1)
        offset = torch.zeros(n, 2, device=x.device)
        if cfg.rotation > 0 or cfg.translate > 0 or tuple(cfg.scale) != (1.0, 1.0):
            # Forward map of the content: p_out = zoom * R @ p_in + shift, R counter-clockwise on
            # screen (y points down) for positive angles, as in torchvision. Inverted here.
            angle = torch.deg2rad(self._uniform(n, -cfg.rotation, cfg.rotation))
            zoom = self._uniform(n, *cfg.scale)
            shift = self._uniform(n, -cfg.translate, cfg.translate, 2) * torch.tensor(
                [w, h], dtype=torch.float32, device=x.device)
            cos, sin = angle.cos() / zoom, angle.sin() / zoom
            matrix = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
            offset = -(matrix @ shift.unsqueeze(-1)).squeeze(-1)
        if cfg.resized_crop:
            size, centre = self._resized_crop_boxes(n, h, w)
            fraction = size / torch.tensor([w, h], dtype=torch.float32, device=x.device)
            matrix = fraction.unsqueeze(-1) * matrix
            offset = fraction * offset + centre

        half = torch.tensor([w / 2, h / 2], dtype=torch.float32, device=x.device)
        theta = torch.cat([matrix * half / half.unsqueeze(-1), (offset / half).unsqueeze(-1)], dim=2)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        # Border padding keeps the outermost pixels from fading towards zero when a sample falls
        # between the last pixel centre and the image edge; points outside the image are then
        # set to black, torchvision's fill=0 for rotations and translations.
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        outside = (grid.abs() > 1).any(dim=-1)
        return out.masked_fill_(outside.unsqueeze(1), 0.0)

    def _resized_crop_boxes(self, n: int, h: int, w: int) -> tuple[Tensor, Tensor]:
        """Crop sizes (N, 2) and centres (N, 2) as (x, y) in centred pixel units.

        Like torchvision: up to 10 draws of area and log-aspect per image, the first that fits
        wins; with none, the largest centred crop whose aspect is in range. Sizes stay real-valued
        because the affine warp needs no whole pixels.
        """
        cfg = self.cfg
        area = self._uniform(n, *cfg.resized_crop_scale, _TRIES) * (h * w)
        log_lo, log_hi = (math.log(r) for r in cfg.resized_crop_ratio)
        aspect = self._uniform(n, log_lo, log_hi, _TRIES).exp()
        size = torch.stack([(area * aspect).sqrt(), (area / aspect).sqrt()], dim=-1)  # (N, tries, 2)
        fits = (size[..., 0] <= w) & (size[..., 1] <= h)
        first = fits.to(torch.uint8).argmax(dim=1)
        size = size[torch.arange(n, device=size.device), first]
        free = torch.tensor([w, h], dtype=torch.float32, device=size.device) - size
        centre = (self._rand(n, 2) - 0.5) * free

        ratio = min(max(w / h, cfg.resized_crop_ratio[0]), cfg.resized_crop_ratio[1])
        fallback = torch.tensor([min(w, h * ratio), min(h, w / ratio)], dtype=torch.float32, device=size.device)
        found = fits.any(dim=1, keepdim=True)
        return torch.where(found, size, fallback), torch.where(found, centre, 0.0)

    def _jitter(self, x: Tensor) -> Tensor:
        """Colour jitter of [0, 1] images in place; saturation and hue only for 3 channels."""
        cfg = self.cfg
        n, c = x.shape[:2]
        if cfg.brightness > 0:
            x.mul_(self._factor(n, cfg.brightness)).clamp_(0, 1)
        if cfg.contrast > 0:
            f = self._factor(n, cfg.contrast)
            mean = _grey(x).mean(dim=(1, 2, 3), keepdim=True)
            x.mul_(f).add_((1 - f) * mean).clamp_(0, 1)
        if c == 3 and cfg.saturation > 0:
            f = self._factor(n, cfg.saturation)
            grey = _grey(x)
            x.mul_(f).add_((1 - f) * grey).clamp_(0, 1)
        if c == 3 and cfg.hue > 0:
            x = shift_hue(x, self._uniform(n, -cfg.hue, cfg.hue))
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
        chosen = (self._rand(n) < self.cfg.erasing) & fits.any(dim=1)
        top = (self._rand(n) * (h - box_h + 1)).floor()
        left = (self._rand(n) * (w - box_w + 1)).floor()

        rows = torch.arange(h, device=x.device).view(1, h, 1)
        cols = torch.arange(w, device=x.device).view(1, 1, w)
        top, left = top.view(n, 1, 1), left.view(n, 1, 1)
        inside = ((rows >= top) & (rows < top + box_h.view(n, 1, 1))
                  & (cols >= left) & (cols < left + box_w.view(n, 1, 1)) & chosen.view(n, 1, 1))
        return x.masked_fill_(inside.unsqueeze(1), 0.0)

    def _mix(self, x: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        cfg = self.cfg
        use_cutmix = cfg.cutmix > 0 and (cfg.mixup == 0 or self._host.random() < 0.5)
        alpha = cfg.cutmix if use_cutmix else cfg.mixup
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


def shift_hue(x: Tensor, shift: Tensor) -> Tensor:
    """Rotate the HSV hue of RGB images in [0, 1] (N, 3, H, W) by ``shift`` turns (N,).

    Value (the largest channel) and chroma (largest minus smallest) are kept, so only the hue
    is computed: in sextants [0, 6), from whichever channel is largest.
    """
    value = x.amax(dim=1, keepdim=True)
    chroma = value - x.amin(dim=1, keepdim=True)
    safe = torch.where(chroma > 0, chroma, 1.0)  # grey pixels: numerators are 0, hue irrelevant
    r, g, b = x.unbind(dim=1)
    r, g, b = r.unsqueeze(1), g.unsqueeze(1), b.unsqueeze(1)
    hue = torch.where(value == r, ((g - b) / safe).remainder(6),
                      torch.where(value == g, (b - r) / safe + 2, (r - g) / safe + 4))
    hue = hue + 6 * shift.view(-1, 1, 1, 1)
    # Back to RGB: channel k in (5, 3, 1) for (R, G, B) is value - chroma * clamp(min(m, 4 - m), 0, 1)
    # with m = (k + hue) mod 6, the closed form of the HSV hexcone.
    m = (torch.tensor([5.0, 3.0, 1.0], device=x.device).view(1, 3, 1, 1) + hue).remainder(6)
    return value - chroma * torch.minimum(m, 4 - m).clamp_(0, 1)


# ---------------------------------------------------------------------- helpers


def _active_ops(cfg: AugmentConfig) -> dict[str, list[str]]:
    """Active op groups mapped to their summary words; empty when the master switch is off."""
    if not cfg.enabled:
        return {}
    groups = {
        "crop": [f"crop pad {cfg.crop_padding}"] if cfg.crop_padding > 0 else [],
        "hflip": [f"hflip {cfg.hflip:g}"] if cfg.hflip > 0 else [],
        "vflip": [f"vflip {cfg.vflip:g}"] if cfg.vflip > 0 else [],
        "affine": [text for active, text in (
            (cfg.resized_crop, f"resized crop {cfg.resized_crop_scale[0]:g}-{cfg.resized_crop_scale[1]:g}"),
            (cfg.rotation > 0, f"rotate ±{cfg.rotation:g}°"),
            (cfg.translate > 0, f"translate ±{cfg.translate:g}"),
            (tuple(cfg.scale) != (1.0, 1.0), f"zoom {cfg.scale[0]:g}-{cfg.scale[1]:g}"),
        ) if active],
        "jitter": [f"{name} {getattr(cfg, name):g}" for name in ("brightness", "contrast", "saturation", "hue")
                   if getattr(cfg, name) > 0],
        "erasing": [f"erasing {cfg.erasing:g}"] if cfg.erasing > 0 else [],
        "mix": [" or ".join(f"{name} α={getattr(cfg, name):g}" for name in ("mixup", "cutmix")
                            if getattr(cfg, name) > 0)] if cfg.mixup > 0 or cfg.cutmix > 0 else [],
    }
    return {key: words for key, words in groups.items() if words}


def _check_config(cfg: AugmentConfig) -> None:
    """Range checks for the list fields, which the config loader checks only by type."""
    pairs = {"resized_crop_scale": cfg.resized_crop_scale, "resized_crop_ratio": cfg.resized_crop_ratio,
             "scale": cfg.scale}
    for name, pair in pairs.items():
        if len(pair) != 2 or not 0 < pair[0] <= pair[1]:
            raise ValueError(f"augment.{name} must be [low, high] with 0 < low <= high, got {list(pair)}")
    if cfg.resized_crop_scale[1] > 1:
        raise ValueError(f"augment.resized_crop_scale is a share of the area, at most 1; got {cfg.resized_crop_scale}")


def _check_uint8(images: Tensor) -> None:
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise TypeError(f"expected uint8 images (N, C, H, W), got {images.dtype} {tuple(images.shape)}")


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
    return images.to(torch.float32).div_(255)


def _standardize(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    if x.shape[1] != mean.shape[1]:
        raise ValueError(f"images have {x.shape[1]} channels but mean/std give {mean.shape[1]}")
    return x.sub_(mean).div_(std)


def _grey(x: Tensor) -> Tensor:
    """Luma (N, 1, H, W) of RGB images; the channel mean for other channel counts."""
    if x.shape[1] != 3:
        return x.mean(dim=1, keepdim=True)
    r, g, b = x.unbind(dim=1)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)
