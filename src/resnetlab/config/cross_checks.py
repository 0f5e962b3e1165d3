"""Cross-field checks of a config: settings each valid alone that do not go together.

Made once, before any data is read, by every command that takes a config (``train`` and
``config`` print the same error). Checks that need the model registry (a model's name, its
weights, its stage count) are the api's (``api/assemble.py``): config knows no models.
"""

from __future__ import annotations

from resnetlab.config.schema import Config
from resnetlab.errors import UserError


def freeze_specs(cfg: Config) -> list[tuple[str, str]]:
    """Every freeze setting with the key that sets it: model.freeze and each train.stages[i].freeze."""
    return [("model.freeze", cfg.model.freeze)] + [(f"train.stages[{i}].freeze", s.freeze)
                                                   for i, s in enumerate(cfg.train.stages)]


def check_cross_fields(cfg: Config) -> None:
    """Checks that no single field can make: each names the keys and a value that works."""
    for key, spec in freeze_specs(cfg):
        if spec not in ("none", "backbone") and not (spec.startswith("stages:") and spec[7:].isdigit()):
            raise UserError(f"{key}={spec} is not understood; use none, backbone or stages:N "
                            "(stem plus the first N stages)")
    if cfg.train.loss in ("mse", "l1", "smooth_l1") and cfg.data.task == "classification":
        raise UserError(f"train.loss={cfg.train.loss} is a regression loss; use cross_entropy or set "
                        "data.task=regression")
    if cfg.train.loss == "cross_entropy" and cfg.data.task == "regression":
        raise UserError("train.loss=cross_entropy needs classes; use mse, l1 or smooth_l1 with data.task=regression")
    betas = cfg.optim.betas
    if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
        raise UserError(f"optim.betas takes two numbers in [0, 1), e.g. optim.betas=[0.9,0.999]; got {betas}")
    for key in ("resized_crop_scale", "resized_crop_ratio", "scale"):
        value = getattr(cfg.augment, key)
        if len(value) != 2 or value[0] > value[1] or value[0] <= 0:
            raise UserError(f"augment.{key} takes [low, high] with 0 < low <= high; got {value}")
    if cfg.augment.resized_crop_scale[1] > 1:
        raise UserError(f"augment.resized_crop_scale is a share of the image area, at most 1; "
                        f"got {cfg.augment.resized_crop_scale}")
    if cfg.model.width <= 0:
        raise UserError(f"model.width={cfg.model.width} is not a channel multiplier; use a positive number "
                        "such as 0.5 or 2")
    if cfg.model.width != 1.0 and (cfg.model.pretrained != "none" or cfg.model.weights):
        source = f"model.pretrained={cfg.model.pretrained}" if cfg.model.pretrained != "none" else f"model.weights={cfg.model.weights}"
        raise UserError(f"model.width={cfg.model.width} changes every layer's shape, so {source} cannot load; "
                        "use model.width=1 with weights, or train from scratch")
    full = cfg.patches.size or cfg.data.image_size  # what the model is tested at
    if cfg.train.resize_from and not 4 <= cfg.train.resize_from < full:
        raise UserError(f"train.resize_from={cfg.train.resize_from} must lie in [4, {full}), below the size the "
                        f"model is tested at ({'patches.size' if cfg.patches.size else 'data.image_size'}={full}); "
                        f"e.g. train.resize_from={max(4, round(full * 0.7))}, or 0 for off")
    _check_beyond_labels(cfg)


def _check_beyond_labels(cfg: Config) -> None:
    """Patches, side-feature fusion and the class-only options of regression."""
    p, m, d = cfg.patches, cfg.model, cfg.data
    if not p.size and (p.train_num > 1 or p.test_num > 1 or p.test_random):
        raise UserError("patches.train_num/test_num/test_random need patches.size (the patch side in pixels), "
                        "e.g. patches.size=24")
    if p.size > d.image_size:
        raise UserError(f"patches.size={p.size} is larger than data.image_size={d.image_size}; lower patches.size "
                        "or raise data.image_size")
    if m.fusion != "none" and not d.feature_columns:
        raise UserError(f"model.fusion={m.fusion} needs side features; set data.feature_columns to CSV columns, "
                        "e.g. data.feature_columns=[x,y]")
    if d.feature_columns and m.fusion == "none":
        raise UserError(f"data.feature_columns={d.feature_columns} would be ignored with model.fusion=none; "
                        "set model.fusion=concat (or bilinear, add)")
    if m.fusion == "add" and m.visual_dim != len(d.feature_columns):
        raise UserError(f"model.fusion=add needs model.visual_dim equal to the {len(d.feature_columns)} feature "
                        f"columns (got {m.visual_dim}); set model.visual_dim={len(d.feature_columns)} or use concat")
    if d.task == "regression":
        used = [k for k, on in (("class_weights", cfg.train.class_weights != "none"),
                                ("balanced_sampler", cfg.train.balanced_sampler),
                                ("mpca_loss", cfg.train.mpca_loss > 0), ("accuracy_loss", cfg.train.accuracy_loss > 0))
                if on]
        if used:
            raise UserError(f"train.{used[0]} needs classes; remove it or set data.task=classification")
