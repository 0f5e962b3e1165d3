"""How much device memory training a model takes, and so what batch fits a given GPU.

Measured, not guessed, and on any device: a forward pass in training mode with autograd's
saved-tensor hooks adds up the tensors kept for the backward pass (the activations, which
grow with the batch), once for one image and once for two. The difference is the cost of
one more image; what does not grow with the batch (weights cast to 16 bits by autocast) is
counted with the weights, their gradients and AdamW's two moment buffers (fp32 each).

Left out: the framework's own overhead (CUDA context, cuDNN workspaces, allocator slack)
and backward's temporary buffers, for which `GiB_RESERVED` and `HEADROOM` are set aside;
so the batches are a starting point, and ``train.auto_batch=true`` halves one that still
does not fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

GiB = 1024**3
GiB_RESERVED = 1.0  # the CUDA context and cuDNN workspaces, roughly
HEADROOM = 0.8  # of what is left, for backward's temporary gradients and allocator fragmentation
GPU_SIZES_GIB = (8, 12, 16, 24, 40, 80)
# Bytes per parameter that do not depend on the batch: fp32 weights, gradients, AdamW's two moments.
STATE_BYTES_PER_PARAM = 4 + 4 + 8


@dataclass(frozen=True)
class MemoryEstimate:
    params: int
    state_bytes: int  # weights, gradients and optimizer state
    fixed_bytes: dict[str, int]  # per precision: saved tensors that do not grow with the batch
    per_image_bytes: dict[str, int]  # per precision ("fp32", "bf16/fp16"): activations of one image

    def batch_for(self, precision: str, device_gib: float) -> int:
        """The largest batch expected to fit on a device of ``device_gib`` GiB (0: not even one)."""
        free = (device_gib - GiB_RESERVED) * GiB - self.state_bytes - self.fixed_bytes[precision]
        batch = max(0, int(HEADROOM * free // max(1, self.per_image_bytes[precision])))
        return batch - batch % 8 if batch >= 8 else batch  # multiples of 8 suit the tensor cores

    def format(self) -> str:
        precisions = list(self.per_image_bytes)
        lines = ["Training memory (AdamW, measured from the tensors kept for backward):",
                 f"  weights, gradients, optimizer state: {self.state_bytes / GiB:.2f} GiB",
                 *[f"  activations per image, {p}: {self.per_image_bytes[p] / 2**20:,.1f} MiB" for p in precisions],
                 f"  batch that fits (leaving {GiB_RESERVED:g} GiB for CUDA itself): "
                 + ", ".join(f"{gib} GiB: {' / '.join(str(self.batch_for(p, gib)) for p in precisions)}"
                             for gib in GPU_SIZES_GIB) + f"  ({' / '.join(precisions)})"]
        return "\n".join(lines)


def training_memory(model: nn.Module, *, input_size: tuple[int, int, int], feature_dim: int = 0) -> MemoryEstimate:
    """Measure ``model``'s training memory for images of ``input_size`` (C, H, W), in fp32 and under
    16-bit autocast (bf16 and fp16 keep tensors of the same size)."""
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    # Frozen parameters have no gradient and no optimizer state.
    state = params * 4 + trainable * (STATE_BYTES_PER_PARAM - 4)
    fixed, per_image = {}, {}
    for label, dtype in (("fp32", None), ("bf16/fp16", torch.bfloat16)):
        one, two = (_saved_bytes(model, input_size, batch, dtype=dtype, feature_dim=feature_dim) for batch in (1, 2))
        per_image[label] = max(0, two - one)
        fixed[label] = max(0, one - per_image[label])
    return MemoryEstimate(params=params, state_bytes=state, fixed_bytes=fixed, per_image_bytes=per_image)


def _saved_bytes(model: nn.Module, input_size: tuple[int, int, int], batch: int, *, dtype: torch.dtype | None,
                 feature_dim: int) -> int:
    """Bytes of the distinct tensors autograd saves in one training-mode forward pass."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    own = {p.untyped_storage().data_ptr() for p in model.parameters()}  # counted with the weights
    seen: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in own:
            seen[storage.data_ptr()] = storage.nbytes()  # one storage saved by several ops counts once
        return tensor

    inputs = [torch.zeros(batch, *input_size, device=device)]
    if feature_dim:
        inputs.append(torch.zeros(batch, feature_dim, device=device))
    was_training = model.training
    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items() if not v.is_floating_point() or "running" in k}
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor), \
                torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            model(*inputs)
    finally:
        # The pass updated BatchNorm's running statistics; put them back as they were.
        model.load_state_dict(state, strict=False)
        model.train(was_training)
    return sum(seen.values())
