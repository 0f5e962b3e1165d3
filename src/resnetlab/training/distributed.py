"""PyTorch's own distributed engine, as torchrun sets it up: nothing home-made.

``torchrun --nproc_per_node=N -m resnetlab train ...`` exports RANK/WORLD_SIZE/LOCAL_RANK;
we join the process group (NCCL on GPUs, Gloo on CPUs) and otherwise stay out of the way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: torch.device) -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(rank=int(os.environ["RANK"]), world_size=world, local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend)
    return info


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every process's ``obj``, in rank order, on every process."""
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def any_process(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every process if `flag` is true on any (a collective: all must call it together)."""
    if not info.enabled:
        return flag
    box = torch.tensor(int(flag), device=device)  # NCCL reduces only tensors on the GPU
    dist.all_reduce(box, op=dist.ReduceOp.MAX)
    return bool(box.item())


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()



def check_sync_bn(sync_bn: bool, device: torch.device, info: DistInfo) -> None:
    """SyncBatchNorm works on CUDA modules only: refuse it elsewhere instead of failing inside DDP."""
    if sync_bn and info.enabled and device.type != "cuda":
        from resnetlab.errors import UserError

        raise UserError(f"train.sync_bn=true needs CUDA GPUs (PyTorch's SyncBatchNorm), this run is on {device}; "
                        "drop train.sync_bn or freeze BatchNorm (model.freeze_bn_stats with model.freeze)")
