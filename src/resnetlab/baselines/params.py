"""The settings of the classical baselines: plain dataclasses with their defaults and checks.

They live apart from the code that computes (which needs numpy, scikit-image, scikit-learn) so
that the command line can show their defaults in `--help` without importing any of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral

from resnetlab.errors import UserError

BLOCK_NORMS = ("L1", "L1-sqrt", "L2", "L2-Hys")
KERNELS = ("linear", "rbf")

# Chosen on Fashion-MNIST's validation split (54,000 training images): C=5/10/20 for the RBF
# SVC scored 0.9165/0.9183/0.9187; LinearSVC at C=0.0003/0.001 scored 0.9020/0.9037.
DEFAULT_C = {"rbf": 10.0, "linear": 0.001}


@dataclass(frozen=True)
class SvmParams:
    """`C` None takes the kernel's default; `gamma` None is sklearn's "scale" (1 / (D · var))."""

    kernel: str = "rbf"
    C: float | None = None
    gamma: float | None = None
    pca_components: int = 100
    max_iter: int = 2000
    seed: int = 0

    @property
    def resolved_C(self) -> float:
        return DEFAULT_C[self.kernel] if self.C is None else float(self.C)

    def validate(self) -> None:
        if self.kernel not in KERNELS:
            raise UserError(f"SVM kernel={self.kernel!r} is not known; use one of {', '.join(KERNELS)}")
        if self.C is not None and not _positive(self.C):
            raise UserError(f"SVM C={self.C!r} must be a number > 0 (larger C fits the training data harder)")
        if self.gamma is not None and not _positive(self.gamma):
            raise UserError(f"SVM gamma={self.gamma!r} must be a number > 0, or unset for sklearn's 'scale'")
        if (isinstance(self.pca_components, bool) or not isinstance(self.pca_components, int)
                or self.pca_components < 1):
            raise UserError(f"SVM pca_components={self.pca_components!r} must be a whole number >= 1")


def _positive(value: object) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0)


@dataclass(frozen=True)
class HogParams:
    """HOG settings; cells and blocks are square (sizes in pixels and in cells).

    `smoothing` is the Gaussian sigma in pixels applied before the gradients (0: none);
    `offset_grid` adds the descriptor of the image padded by half a cell (edge pixels
    repeated), whose cells straddle the first grid's.
    """

    orientations: int = 12
    pixels_per_cell: int = 4
    cells_per_block: int = 2
    block_norm: str = "L2-Hys"
    smoothing: float = 0.7
    offset_grid: bool = True

    def validate(self, *, image_size: int | None = None) -> None:
        """Raise a one-line UserError for settings HOG cannot use on `image_size` images."""
        for key in ("orientations", "pixels_per_cell", "cells_per_block"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
                raise UserError(f"HOG {key}={value!r} must be a whole number >= 1")
        if isinstance(self.smoothing, bool) or not isinstance(self.smoothing, (int, float)) \
                or not 0 <= self.smoothing < float("inf"):
            raise UserError(f"HOG smoothing={self.smoothing!r} must be a number of pixels >= 0 (0: no blur)")
        if self.block_norm not in BLOCK_NORMS:
            raise UserError(f"HOG block_norm={self.block_norm!r} is not known; use one of {', '.join(BLOCK_NORMS)}")
        if image_size is None:
            return
        if self.pixels_per_cell > image_size:
            raise UserError(f"HOG pixels_per_cell={self.pixels_per_cell} is larger than the {image_size}px images; "
                            f"use at most {image_size} or raise data.image_size")
        cells = image_size // self.pixels_per_cell
        if self.cells_per_block > cells:
            raise UserError(f"HOG cells_per_block={self.cells_per_block} exceeds the {cells} cells per side of "
                            f"{image_size}px images at pixels_per_cell={self.pixels_per_cell}; use at most {cells}")

    def feature_length(self, height: int, width: int) -> int:
        """Length of one image's feature vector: blocks x cells per block x orientations, per grid."""
        return sum(self._grid_length(height + pad, width + pad) for pad in self._paddings())

    def _paddings(self) -> list[int]:
        # The offset grid needs a shift of at least one pixel, so 1-px cells have none.
        half = self.pixels_per_cell // 2
        return [0, self.pixels_per_cell] if self.offset_grid and half > 0 else [0]

    def _grid_length(self, height: int, width: int) -> int:
        rows = height // self.pixels_per_cell - self.cells_per_block + 1
        cols = width // self.pixels_per_cell - self.cells_per_block + 1
        return max(rows, 0) * max(cols, 0) * self.cells_per_block**2 * self.orientations
