"""Ctrl-C and SIGTERM finish the current step and save; a second Ctrl-C aborts at once."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType


class StopRequest:
    """Installed for the duration of a run; the loop asks :meth:`agreed` after each step.

    Under DDP, ``agree`` (set by the caller) combines every process's request, so all of them
    stop after the same step and save one consistent checkpoint.
    """

    def __init__(self) -> None:
        self.requested: str | None = None
        self.agree: Callable[[bool], bool] | None = None
        self._previous: dict[int, object] = {}

    def agreed(self) -> str | None:
        """The request as every process sees it; under DDP a collective, so all must call it together.

        The answer rests on the vote alone: a signal landing during the vote is counted at the next
        one, or this process would stop while the others go on (and wait for it forever)."""
        if self.agree is None:
            return self.requested
        mine = self.requested
        if not self.agree(mine is not None):
            return None
        if self.requested is None:
            self.requested = "a signal to another process"
        return self.requested

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: abort now
        self.requested = signal.Signals(signum).name

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():  # signals only work there
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


class Interrupted(Exception):
    """Raised by the loop after it saved ``last.pt`` in answer to a stop request."""

    def __init__(self, signal_name: str, checkpoint: str) -> None:
        super().__init__(f"stopped by {signal_name}; state saved to {checkpoint}")
        self.signal_name = signal_name
        self.checkpoint = checkpoint
        self.run_dir: object = None  # set by whoever knows the run folder
