"""What a deployed model file must say about itself so that anyone can feed it images and read its outputs."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from resnetlab.errors import UserError

CARD_VERSION = 1


@dataclass(frozen=True)
class ModelCard:
    """The preprocessing and the meaning of the outputs, stored beside the weights of an exported model.

    Input: float32 (N, channels, input_size, input_size): the image center-cropped to a square and resized
    to ``input_size`` (as resnetlab decodes), pixels scaled to [0, 1], then ``(x - mean) / std`` per channel. Output: logits over ``class_names`` (classification), or one score per image
    (regression), in target units after ``score * target_std + target_mean`` when ``target_stats`` is set.
    """

    task: str
    class_names: list[str]
    input_size: int
    channels: int
    mean: list[float]
    std: list[float]
    model: str
    target_stats: list[float] | None = None
    resnetlab_version: str = ""
    card_version: int = CARD_VERSION

    def to_strings(self) -> dict[str, str]:
        """Every field as a JSON string under ``resnetlab.<field>`` (ONNX metadata_props and safetensors
        headers hold strings only)."""
        return {f"resnetlab.{key}": json.dumps(value) for key, value in asdict(self).items()}

    @classmethod
    def from_strings(cls, props: dict[str, str], *, source: str) -> ModelCard:
        values: dict[str, Any] = {}
        for field in fields(cls):
            key = f"resnetlab.{field.name}"
            if key in props:
                values[field.name] = json.loads(props[key])
        missing = [f.name for f in fields(cls) if f.name not in values and f.default is not None
                   and f.name not in ("target_stats", "resnetlab_version", "card_version")]
        if missing:
            raise UserError(f"{source} carries no resnetlab metadata ({', '.join(missing)} missing); "
                            "give a file written by resnetlab export")
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    def decode_scores(self, outputs: Any) -> Any:
        scores = outputs.reshape(-1)
        if self.target_stats:
            mean, std = self.target_stats
            scores = scores * std + mean
        return scores
