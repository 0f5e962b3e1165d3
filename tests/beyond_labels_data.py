"""Small real-image datasets for the "beyond one label per image" tests, written as CSV manifests.

- `quality_manifest`: crops of scikit-learn's two sample photos, blurred, noised or JPEG'd at a
  random strength; the score (a KonIQ-style MOS) falls linearly with the strength.
- `digits_manifest`: scikit-learn's 8x8 digits as PNGs with a class label, optional side
  features, clip/frame columns and a fixed train/val/test split.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter


def write_manifest(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    """A CSV with `header` and `rows`; returns `path`."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def distort(image: Image.Image, kind: str, strength: float, rng: np.random.Generator) -> Image.Image:
    """One distortion at ``strength`` in [0, 1]: 0 leaves the image as it is."""
    if kind == "blur":
        return image.filter(ImageFilter.GaussianBlur(radius=2.0 * strength))
    if kind == "noise":
        pixels = np.asarray(image, dtype=np.float32)
        pixels = pixels + rng.normal(0.0, 50.0 * strength, pixels.shape)
        return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=round(95 - 90 * strength))
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def quality_manifest(root: Path, *, count: int = 320, size: int = 32, kinds: tuple[str, ...] = ("blur", "noise"),
                     seed: int = 0, split: tuple[float, float] = (0.7, 0.15)) -> Path:
    """KonIQ-shaped CSV (image_name, MOS, MOS_zscore, set) over ``count`` distorted photo crops."""
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(seed)
    photos = [Image.fromarray(p).resize((p.shape[1] // 3, p.shape[0] // 3), Image.BILINEAR)
              for p in load_sample_images().images]
    folder = root / "images"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    strengths = rng.uniform(0.0, 1.0, count)
    scores = 100.0 * (1.0 - strengths) + rng.normal(0.0, 2.0, count)  # raters disagree a little
    for i in range(count):
        photo = photos[i % len(photos)]
        left = int(rng.integers(0, photo.width - size))
        top = int(rng.integers(0, photo.height - size))
        crop = photo.crop((left, top, left + size, top + size))
        image = distort(crop, kinds[i % len(kinds)], float(strengths[i]), rng)
        name = f"img{i:04d}.png"
        image.save(folder / name)
        rows.append([f"images/{name}", round(float(scores[i]), 3)])
    mean, std = float(np.mean(scores)), float(np.std(scores))
    n_train, n_val = int(split[0] * count), int(split[1] * count)
    # KonIQ-10k's own spelling of its splits
    sets = ["training"] * n_train + ["validation"] * n_val + ["test"] * (count - n_train - n_val)
    body = [[name, mos, round((mos - mean) / std, 4), s] for (name, mos), s in zip(rows, sets)]
    return write_manifest(root / "koniq.csv", ["image_name", "MOS", "MOS_zscore", "set"], body)


def digit_images(root: Path, *, size: int = 16) -> tuple[list[str], np.ndarray]:
    """Every digit (1,797) as a ``size``-pixel greyscale PNG; returns relative paths and labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    folder = root / "digits"
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i, pixels in enumerate(digits.images):
        name = f"digits/d{i:04d}.png"
        Image.fromarray((pixels * 255 / 16).astype(np.uint8)).resize((size, size), Image.BILINEAR).save(root / name)
        names.append(name)
    return names, digits.target.astype(np.int64)
