"""What a run saves and restores, walked from one ``{name: part}`` map.

``last.pt`` holds every part's ``state_dict`` (the model, optimizer, scaler, monitor, history,
loader position, and each process's augmentation draws and random states), so a resumed run
continues bit-exactly. ``best.pt`` is the slim file users take away: the model's weights and
the run's metadata (class names, normalization, config, task, input size, channels) plus the
metrics of its epoch; no optimizer, scheduler, random or loader state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from resnetlab.training.checkpoint import atomic_save, load_checkpoint
from resnetlab.training.device import load_rng_state, rng_state
from resnetlab.training.distributed import DistInfo, barrier, gather_objects


class Stateful(Protocol):
    def state_dict(self) -> Any: ...
    def load_state_dict(self, state: Any) -> Any: ...


class GlobalRng:
    """The process-wide random states (Python, NumPy, torch, CUDA) as a part with a state_dict."""

    def state_dict(self) -> dict:
        return rng_state()

    def load_state_dict(self, state: dict) -> None:
        load_rng_state(state)


class CheckpointMismatch(ValueError):
    """A checkpoint's state for ``part`` does not fit this run's part of that name."""

    def __init__(self, path: Path, part: str) -> None:
        self.path, self.part = path, part
        super().__init__(f"{path}: the saved {part} does not fit this run's {part}")


class Checkpointer:
    """Save ``last``/``best`` checkpoints of ``parts`` into ``folder`` and restore them.

    ``parts`` are shared by every process (saved by the main one); ``per_process`` parts differ
    between processes (each draws its own augmentation), so each one's state is kept and a
    process resumes its own when the run has as many processes. A part given as None is saved
    as None and skipped on restore (e.g. no gradient scaler in fp32). ``best`` keeps the
    ``slim`` parts only (default: ``{"model": parts["model"]}``; a run with a weight average
    keeps the average there), with ``best_extra()``; ``on_saved`` runs on the main process
    after each save (e.g. to write the history files beside the checkpoint).
    """

    def __init__(self, folder: Path, parts: Mapping[str, Stateful | None], *,
                 per_process: Mapping[str, Stateful] | None = None, meta: Mapping[str, Any] | None = None,
                 dist: DistInfo | None = None, slim: Mapping[str, Stateful] | None = None,
                 best_extra: Callable[[], dict[str, Any]] | None = None,
                 on_saved: Callable[[], None] | None = None) -> None:
        self.folder, self.parts = Path(folder), dict(parts)
        self.per_process = dict(per_process or {})
        self.meta, self.dist = dict(meta or {}), dist or DistInfo()
        self.slim = dict(slim) if slim is not None else {"model": self.parts["model"]}
        self.best_extra, self.on_saved = best_extra, on_saved

    def save(self, kind: str, loop: dict[str, Any]) -> None:
        """Write ``{kind}.pt``; a collective under DDP (the loop saves at the same step on every process)."""
        draws = gather_objects(self._states(self.per_process), self.dist) if kind == "last" else []
        if self.dist.is_main:
            if kind == "last":
                payload = {**self._states(self.parts), **self.meta, "epoch": loop["epoch"], "loop": loop,
                           **draws[0], "per_process": draws}
            else:
                extra = self.best_extra() if self.best_extra else {}
                payload = {**self._states(self.slim), **self.meta, "epoch": loop["epoch"], "loop": loop, **extra}
            atomic_save(payload, self.folder / f"{kind}.pt")
            if self.on_saved is not None:
                self.on_saved()
        # The others wait for the file: if one of them exits (a stop), torchrun ends the writer too.
        barrier(self.dist)

    def restore(self, path: Path, *, map_location: Any = "cpu") -> dict[str, Any]:
        """Load every part's state from ``path`` (a last.pt); returns the saved loop counters."""
        ckpt = load_checkpoint(path, map_location=map_location)
        for name, part in self.parts.items():
            self._load(path, name, part, ckpt)
        # This process's own draws when the run had as many processes; else the first one's.
        per_process = ckpt.get("per_process") or []
        draws = per_process[self.dist.rank] if len(per_process) == self.dist.world_size else ckpt
        for name, part in self.per_process.items():
            self._load(path, name, part, draws)
        return ckpt["loop"]

    @staticmethod
    def _states(parts: Mapping[str, Stateful | None]) -> dict[str, Any]:
        return {name: None if part is None else part.state_dict() for name, part in parts.items()}

    @staticmethod
    def _load(path: Path, name: str, part: Stateful | None, states: Mapping[str, Any]) -> None:
        if part is not None and name not in states:
            raise CheckpointMismatch(path, name)
        if part is None or states[name] is None:  # e.g. a gradient scaler saved by an fp32 run
            return
        try:
            part.load_state_dict(states[name])
        except (KeyError, RuntimeError, ValueError, TypeError):
            raise CheckpointMismatch(path, name) from None
