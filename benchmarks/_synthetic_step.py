"""One training step on a fixed random batch: the model's own cost, with no data path around it.

Shared by the benchmarks that time a model step at a precision and memory format. Import it after
``resnetlab`` where the OpenMP settings matter (it imports torch).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from resnetlab.models import create_model


def synthetic_step(model_name: str, *, size: int, batch: int, dtype: torch.dtype | None, channels_last: bool,
                   after: Callable[[], None] | None = None) -> Callable[[], None]:
    """A function running one SGD step of ``model_name`` (10 classes, 3 channels) on ``batch`` random
    images of ``size`` px under autocast to ``dtype`` (None: fp32); ``after`` runs after each step."""
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=10, stem="cifar" if size <= 64 else "imagenet")
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=memory_format)
    y = torch.randint(0, 10, (batch,))

    def step() -> None:
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            loss = F.cross_entropy(model(x).float(), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if after is not None:
            after()

    return step
