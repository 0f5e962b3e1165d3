"""The learning rate a run gets when ``optim.lr`` is not set: a formula of the optimizer and the batch.

A learning rate is tuned for a batch size. SGD's classic 0.1 belongs to batch 256 (arXiv:1706.02677
scales it linearly: lr = 0.1 / 256 * batch); used unchanged at batch 32 it is 8x too large, and a
224-px ResNet-18 on a few hundred images diverged within 2 epochs. Adam and AdamW follow the square
root of the batch instead (their update is normalised per parameter; arXiv:2205.10287), from 1e-3 at
batch 256. The batch here is what one optimizer step sees: batch_size x accumulate.

A regression head has no softmax to bound its gradient: the squared error grows with the miss, and
the head's step grows with it. ResNet-18 regressing standardized scores with SGD + MSE blew up to
NaN within 8 steps at lr 0.0125 and 0.05 (batch 64, fp32 as well as bf16), and trained at both once
the gradient norm was clipped to 1; so regression clips at 1.0 unless ``train.grad_clip`` is set.
"""

from __future__ import annotations

import dataclasses
import math

from resnetlab.config.schema import Config

# optimizer -> (reference lr, reference batch, scaling rule)
REFERENCE: dict[str, tuple[float, int, str]] = {
    "sgd": (0.1, 256, "linear"),
    "adam": (1e-3, 256, "sqrt"),
    "adamw": (1e-3, 256, "sqrt"),
}


def auto_lr(optimizer: str, batch: int) -> tuple[float, str]:
    """The learning rate for ``optimizer`` at ``batch`` images per step, and the formula in words."""
    base, ref, rule = REFERENCE[optimizer]
    if rule == "linear":
        return base * batch / ref, f"{base:g} × {batch}/{ref}, linear scaling"
    return base * math.sqrt(batch / ref), f"{base:g} × √({batch}/{ref}), square-root scaling"


def with_auto_lr(cfg: Config) -> tuple[Config, str]:
    """``cfg`` with ``optim.lr`` (and ``train.grad_clip``) filled in when unset, and a note for the
    run's banner ("" when the lr was set)."""
    if cfg.train.grad_clip is None:
        clip = 1.0 if cfg.data.task == "regression" else 0.0
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, grad_clip=clip))
    if cfg.optim.lr is not None:
        return cfg, ""
    lr, formula = auto_lr(cfg.optim.name, cfg.train.batch_size * cfg.train.accumulate)
    optim = dataclasses.replace(cfg.optim, lr=lr)
    return dataclasses.replace(cfg, optim=optim), f"{formula}; set optim.lr to override"


def lr_words(cfg: Config) -> str:
    """" = 0.1 × 32/256, linear scaling; set optim.lr to override" when ``optim.lr`` is the batch-scaled
    default (a filled-in config no longer says whether it was set; equal values read the same), else ""."""
    lr, formula = auto_lr(cfg.optim.name, cfg.train.batch_size * cfg.train.accumulate)
    return f" = {formula}; set optim.lr to override" if math.isclose(cfg.optim.lr, lr) else ""
