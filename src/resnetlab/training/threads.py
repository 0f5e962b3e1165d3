"""How many CPU threads to compute with, chosen from the cores actually free and re-checked as load changes.

PyTorch's CPU kernels split every operation across its OpenMP threads and wait at the end for the
slowest. When another process takes one of the cores, the thread running there is preempted and all
the others wait for it at every operation: on this project's 2-core machine beside one busy process,
ResNet-20 (32 px, batch 128, fp32) at two threads fell from 494 to 46 img/s, while at one thread it
still did 157 (a one-off measurement on a machine shared with other jobs; benchmarks/contention.py
measures it in one run). Two measures work together:

- before torch loads (``resnetlab/__init__.py``), OpenMP threads waiting at a barrier are set to spin
  only a few microseconds and then sleep, instead of spinning on the cores the other process needs;
- the count starts at the cores free when training starts, and :class:`ThreadController` times the
  optimizer steps and, when they slow down or speed up, when :class:`OtherLoad` sees a core come
  free (and now and then regardless), tries one neighbouring thread count for a few steps, keeping
  whichever was faster.

The core probe matters on the way back up: at one thread beside a busy process, a step takes as
long as on the idle machine (the one thread has a core to itself either way), so the step times
alone cannot tell that the other process has ended.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

import torch


def cores() -> int:
    """Cores this process may run on (its affinity mask, where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def physical_cores() -> int:
    """One thread per physical core: hyperthreads slow convolutions down."""
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except ImportError:
        physical = None
    return max(1, min(physical or cores(), cores()))


def free_cores(*, sample_s: float = 0.2) -> int:
    """Cores not busy with other processes, from the CPU time spent over ``sample_s`` seconds
    (call it before this process starts computing: its own use would count as busy)."""
    try:
        import psutil
    except ImportError:
        return physical_cores()
    busy = sum(psutil.cpu_percent(interval=sample_s, percpu=True)) / 100.0
    return max(1, min(physical_cores(), round(cores() - busy)))


class OtherLoad:
    """Cores' worth of CPU time that other processes used on this process's cores since the last call.

    The machine's busy time on the cores in our affinity mask (from ``psutil.cpu_times``), less our
    own process's CPU time over the same wall interval. A call costs about 40 us (one read of
    /proc/stat on Linux); None where psutil is missing.
    """

    def __init__(self) -> None:
        try:
            import psutil
        except ImportError:
            self._psutil = None
            return
        self._psutil = psutil
        self._cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        self._last = self._sample()

    def _sample(self) -> tuple[float, float, float]:
        per_cpu = self._psutil.cpu_times(percpu=True)
        if self._cpus is not None and max(self._cpus) < len(per_cpu):
            per_cpu = [per_cpu[i] for i in self._cpus]
        idle = sum(t.idle + getattr(t, "iowait", 0.0) for t in per_cpu)
        busy = sum(sum(t) for t in per_cpu) - idle - sum(getattr(t, "guest", 0.0) + getattr(t, "guest_nice", 0.0)
                                                         for t in per_cpu)  # guest time is inside user already
        return busy, time.process_time(), time.monotonic()

    def __call__(self) -> float | None:
        if self._psutil is None:
            return None
        now = self._sample()
        (busy0, own0, wall0), (busy1, own1, wall1) = self._last, now
        self._last = now
        if wall1 - wall0 <= 0:
            return None
        return max(0.0, (busy1 - busy0) - (own1 - own0)) / (wall1 - wall0)


class ThreadController:
    """Keeps the thread count whose optimizer steps are fastest under the load of the moment.

    Call :meth:`step_done` after every optimizer step (the loop syncs each step on the CPU, so the
    time between calls is the step's time). The first ``warmup`` steps are not timed (kernel
    selection). A trial runs a neighbouring count (one thread fewer or more) for ``trial`` steps and
    the median step times decide, a switch needing a ``margin`` gain so noise does not make the count
    flap. Trials come when the step time moves by more than ``watch`` from its level at the last
    decision (load came or went), when ``other_load`` (sampled every ``probe_s`` seconds of steps) says
    a core has come free since the last decision while running below ``maximum`` threads, and
    otherwise every ``period`` steps, a period that doubles after each trial that changed nothing (up
    to ``max_period``): on an idle machine the trials of a worse count cost well under 1% of the
    steps. Medians also keep the one long interval that spans an epoch's evaluation from counting.
    """

    def __init__(self, start: int, *, maximum: int, period: int = 60, max_period: int = 960, trial: int = 4,
                 warmup: int = 3, margin: float = 0.08, watch: float = 0.3, log: Callable[[str], None] = print,
                 set_threads: Callable[[int], None] = torch.set_num_threads,
                 clock: Callable[[], float] = time.perf_counter,
                 other_load: Callable[[], float | None] | None = None, cores: int | None = None,
                 probe_s: float = 0.25) -> None:
        self.threads, self.maximum = start, maximum
        self.other_load, self.cores, self.probe_s = other_load, cores or maximum, probe_s
        self._since_probe = 0.0
        # Other processes' load at the last decision; at the start, what a start below the maximum implies.
        self._others = float(max(0, self.cores - start))
        self.base_period, self.max_period, self.period = period, max_period, period
        self.trial, self.warmup, self.margin, self.watch = trial, warmup, margin, watch
        self.log, self._set, self._clock = log, set_threads, clock
        self._last: float | None = None
        self._times: list[float] = []  # step times at the current count since the last decision
        self._trial_times: list[float] = []
        self._trying: int | None = None
        self._level: float | None = None  # median step time at the current count after the last decision
        self._steps = 0
        self._next_down = True  # scheduled trials alternate: one thread fewer, then one more

    def step_done(self) -> None:
        now = self._clock()
        if self._last is not None:
            self.record(now - self._last)
        self._last = self._clock()

    def record(self, seconds: float) -> None:
        """One optimizer step took ``seconds`` at the thread count in use."""
        self._steps += 1
        if self._steps <= self.warmup:
            return
        if self._trying is not None:
            self._trial_times.append(seconds)
            if len(self._trial_times) >= self.trial:
                self._decide()
            return
        self._times.append(seconds)
        if self._core_came_free(seconds):
            self._start_trial(down=False, only=True)
            return
        if len(self._times) < self.trial:
            return
        recent = statistics.median(self._times[-self.trial:])
        if self._level is None:
            self._level = recent
        if abs(recent / self._level - 1) > self.watch:
            # Slower: someone took a core, so try one thread fewer; faster: one came back, try one more.
            # Where that count is out of range, the new speed becomes the level to watch.
            self._start_trial(down=recent > self._level, only=True)
        elif len(self._times) >= self.period:
            self._start_trial(down=self._next_down)
            self._next_down = not self._next_down

    def _core_came_free(self, seconds: float) -> bool:
        """Other processes now leave a core more than the last decision saw, and we could use it."""
        if self.other_load is None or self.threads >= self.maximum:
            return False
        self._since_probe += seconds
        if self._since_probe < self.probe_s:
            return False
        self._since_probe = 0.0
        others = self.other_load()
        if others is None:
            return False
        free = self.cores - others
        return free >= self.threads + 0.7 and others <= self._others - 0.7

    def _start_trial(self, *, down: bool, only: bool = False) -> None:
        """Try one thread fewer (``down``) or more; the other way too, where that one is out of range,
        unless ``only``."""
        options = [n for n in ((self.threads - 1, self.threads + 1) if down else (self.threads + 1, self.threads - 1))
                   if 1 <= n <= self.maximum]
        if only:
            options = options[:1] if options and (options[0] < self.threads) == down else []
        if not options:
            self._times, self._level = [], None
            return
        self._trying, self._trial_times = options[0], []
        if self.other_load is not None:
            self.other_load()  # so the reading at the decision covers the trial's steps alone
        self._set(self._trying)
        self._last = None  # the switch itself is not part of any step

    def _decide(self) -> None:
        # The last `trial` steps at the current count saw the load the trial saw.
        current = statistics.median(self._times[-self.trial:])
        tried = statistics.median(self._trial_times[1:])  # its first step pays the switch
        candidate, self._trying = self._trying, None
        if tried < current * (1 - self.margin):
            self.log(f"threads {self.threads} -> {candidate}: a step took {tried * 1e3:.0f} ms at {candidate} "
                     f"vs {current * 1e3:.0f} ms at {self.threads} (the load on the CPU changed)")
            self.threads, self._level, self.period = candidate, tried, self.base_period
        else:
            self._set(self.threads)
            self._level, self.period = current, min(self.max_period, 2 * self.period)
        self._times = []
        self._last = None
        if self.other_load is not None:
            others = self.other_load()  # the load this decision was made under
            self._others, self._since_probe = self._others if others is None else others, 0.0


def start_threads(requested: int, *, device: torch.device, log: Callable[[str], None] = print,
                  world_size: int = 1, deterministic: bool = False) -> ThreadController | None:
    """Set the starting thread count; a controller when it is ours to adapt (``requested`` 0 on a CPU).

    An explicit count (``train.threads=N``, or the budget ``study --jobs`` hands each worker) is kept.
    So is one per physical core in a deterministic run: the thread count changes how a convolution
    sums, so it must not depend on the load if reruns are to be bit-identical.
    """
    if requested > 0:
        torch.set_num_threads(requested)
        return None
    maximum = max(1, physical_cores() // world_size)
    if device.type != "cpu" or deterministic:
        torch.set_num_threads(maximum)  # on a GPU the CPU threads only feed it
        return None
    start = max(1, min(maximum, free_cores() // world_size))
    torch.set_num_threads(start)
    if start < maximum:
        log(f"threads: {start} of {maximum} cores are free now; starting with {start} and re-checking as load changes")
    if maximum == 1:
        return None
    return ThreadController(start, maximum=maximum, log=log, other_load=OtherLoad(), cores=physical_cores())
