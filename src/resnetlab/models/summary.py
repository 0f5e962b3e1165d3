"""A layer table with output shapes and parameter counts, plus FLOPs and MACs.

One forward pass on a zero input does both: forward hooks record each row's output
shape, and ``torch.utils.flop_counter.FlopCounterMode`` counts FLOPs of convolutions
and matrix products (the operations that dominate; BatchNorm, ReLU, pooling and
additions are not counted, the usual convention behind "ResNet-50: 4.1 GMACs").
MACs = FLOPs / 2.

Rows are the layers a reader thinks in: stem layers, each residual block, pooling and
classifier. Containers (``nn.Sequential`` stages, module lists) and wrapped models
(anything with ``forward_features``) are opened; any other module is one row.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from resnetlab.models.memory import MemoryEstimate

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


@dataclass(frozen=True)
class LayerRow:
    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int


@dataclass
class ModelSummary:
    model_name: str
    input_size: tuple[int, int, int]
    batch_size: int
    rows: list[LayerRow] = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0
    flops: int = 0  # for one forward pass of batch_size images
    macs: int = 0
    memory: MemoryEstimate | None = None  # training memory, when asked for

    def format(self) -> str:
        """A fixed-width table followed by totals, ready to print."""
        headers = ("Layer", "Type", "Output shape", "Params")
        cells = [(r.name, r.kind, _shape(r.output_shape), f"{r.params:,}") for r in self.rows]
        widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)]

        def line(values: tuple[str, ...]) -> str:
            left = "  ".join(v.ljust(w) for v, w in zip(values[:3], widths[:3]))
            return f"{left}  {values[3].rjust(widths[3])}"

        rule = "-" * len(line(headers))
        c, h, w = self.input_size
        lines = [f"{self.model_name}, input {self.batch_size} x {c} x {h} x {w}", rule, line(headers), rule]
        lines += [line(cell) for cell in cells]
        lines += [
            rule,
            f"Total params: {self.total_params:,}",
            f"Trainable params: {self.trainable_params:,}",
            f"Non-trainable params: {self.total_params - self.trainable_params:,}",
            f"MACs: {_giga(self.macs)}",
            f"FLOPs: {_giga(self.flops)}",
        ]
        if self.batch_size > 1:
            lines.append(f"(MACs and FLOPs are for the batch of {self.batch_size})")
        if self.memory is not None:
            lines += [rule, self.memory.format()]
        return "\n".join(lines)


def summarize(model: nn.Module, *, input_size: tuple[int, int, int], batch_size: int = 1,
              feature_dim: int = 0) -> ModelSummary:
    """Run one forward pass of zeros shaped (batch_size, *input_size) and tabulate ``model``.

    ``feature_dim`` > 0 also feeds a zero side-feature vector (a fusion model's second input).

    The model runs in eval mode without gradients; its mode is restored afterwards.
    """
    if (not isinstance(input_size, (tuple, list)) or len(input_size) != 3
            or not all(isinstance(v, int) and v > 0 for v in input_size)):
        raise ValueError(f"input_size {input_size!r} is not valid; use (channels, height, width), e.g. (3, 224, 224)")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size {batch_size!r} is not valid; use a positive integer")
    input_size = tuple(input_size)

    shapes: dict[str, tuple[int, ...]] = {}
    order: list[str] = []
    handles = []
    rows_by_name = dict(_row_modules(model))
    for name, module in rows_by_name.items():
        handles.append(module.register_forward_hook(_record(name, shapes, order)))

    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    x = torch.zeros(batch_size, *input_size, device=device)
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            model(x, *([torch.zeros(batch_size, feature_dim, device=device)] if feature_dim else []))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)

    flops = int(counter.get_total_flops())
    rows = [LayerRow(name, rows_by_name[name]._get_name(), shapes[name], _count(rows_by_name[name]))
            for name in order]
    return ModelSummary(
        model_name=model._get_name(),
        input_size=input_size,
        batch_size=batch_size,
        rows=rows,
        total_params=_count(model),
        trainable_params=sum(p.numel() for p in model.parameters() if p.requires_grad),
        flops=flops,
        macs=flops // 2,
    )


def _row_modules(module: nn.Module, prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    for name, child in module.named_children():
        full = f"{prefix}{name}"
        if isinstance(child, _CONTAINERS) or hasattr(child, "forward_features"):
            yield from _row_modules(child, full + ".")
        else:
            yield full, child


def _record(name: str, shapes: dict[str, tuple[int, ...]], order: list[str]):
    def hook(module: nn.Module, inputs: object, output: object) -> None:
        if name in shapes:  # a module called twice (a shared ReLU) keeps its first row
            return
        if isinstance(output, torch.Tensor):
            shapes[name] = tuple(output.shape)
        elif isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
            shapes[name] = tuple(output[0].shape)
        else:
            shapes[name] = ()
        order.append(name)

    return hook


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _shape(shape: tuple[int, ...]) -> str:
    return " x ".join(str(v) for v in shape) if shape else "-"


def _giga(value: int) -> str:
    return f"{value / 1e9:.2f} G" if value >= 1e7 else f"{value / 1e6:.2f} M"
