"""The thread controller follows simulated step times; the OpenMP wait policy is set before torch loads."""

from __future__ import annotations

import os
import subprocess
import sys

import torch

from resnetlab.training.threads import OtherLoad, ThreadController, start_threads


def simulate(controller: ThreadController, step_time: dict[int, float], steps: int) -> None:
    """Feed ``steps`` steps whose time depends on the thread count the controller has set."""
    for _ in range(steps):
        controller.record(step_time[controller.current])


def make(start: int = 2, maximum: int = 2, **kwargs) -> tuple[ThreadController, list[str], list[int]]:
    lines: list[str] = []
    calls: list[int] = []

    def set_threads(n: int) -> None:
        calls.append(n)
        controller.current = n

    controller = ThreadController(start, maximum=maximum, log=lines.append, set_threads=set_threads, **kwargs)
    controller.current = start
    return controller, lines, calls


def test_switches_to_fewer_threads_when_a_busy_process_slows_the_steps_down():
    controller, lines, _ = make(period=20, trial=4, warmup=2)
    simulate(controller, {2: 0.10, 1: 0.18}, 30)  # idle: two threads are faster
    assert controller.threads == 2 and controller.current == 2
    simulate(controller, {2: 0.60, 1: 0.20}, 12)  # another process took a core
    assert controller.threads == 1 and controller.current == 1
    assert len(lines) == 1 and lines[0].startswith("threads 2 -> 1:")


def test_goes_back_up_when_the_load_leaves():
    controller, lines, _ = make(start=1, period=20, trial=4, warmup=2)
    simulate(controller, {2: 0.60, 1: 0.20}, 10)
    assert controller.threads == 1
    simulate(controller, {2: 0.06, 1: 0.11}, 16)  # the competitor ended: one thread runs faster, then two win
    assert controller.threads == 2 and controller.current == 2
    assert lines[-1].startswith("threads 1 -> 2:")


class Machine:
    """A simulated 2-core machine: step times per thread count depend on whether a busy process runs."""

    def __init__(self) -> None:
        self.idle = {2: 0.06, 1: 0.10}
        self.loaded = {2: 0.30, 1: 0.10}  # at one thread a step takes as long beside the busy process as without
        self.busy = False
        self._window: list[float] = []  # the other process's load at each step since the last reading

    def other_load(self) -> float:
        """As OtherLoad reads it: the mean over the steps since the last call."""
        window, self._window = self._window or [1.0 if self.busy else 0.05], []
        return sum(window) / len(window)

    def run(self, controller: ThreadController, steps: int) -> list[int]:
        counts = []
        for _ in range(steps):
            self._window.append(1.0 if self.busy else 0.05)
            controller.record((self.loaded if self.busy else self.idle)[controller.current])
            counts.append(controller.current)
        return counts


def test_a_core_coming_free_is_seen_from_the_machine_load_when_step_times_cannot_show_it():
    machine = Machine()
    controller, lines, _ = make(period=200, trial=4, warmup=2, other_load=machine.other_load, probe_s=0.5)
    machine.run(controller, 20)
    machine.busy = True
    machine.run(controller, 40)
    assert controller.threads == 1 and lines[-1].startswith("threads 2 -> 1:")
    machine.busy = False
    counts = machine.run(controller, 20)
    # The probe runs every 0.5 s of steps (5 steps of 0.1 s); a 4-step trial at 2 threads then wins.
    assert controller.threads == 2 and counts.index(2) <= 6 and lines[-1].startswith("threads 1 -> 2:")
    assert len(lines) == 2

    blind, _, _ = make(period=200, trial=4, warmup=2)  # step times alone: stuck at 1 until a scheduled trial
    machine.run(blind, 20)
    machine.busy = True
    machine.run(blind, 40)
    assert blind.threads == 1
    machine.busy = False
    assert set(machine.run(blind, 100)) == {1}


def test_a_run_started_beside_a_busy_process_goes_up_when_it_ends():
    machine = Machine()
    machine.busy = True
    controller, lines, _ = make(start=1, period=200, trial=4, warmup=2, other_load=machine.other_load)
    machine.run(controller, 50)
    assert controller.threads == 1 and lines == []
    machine.busy = False
    machine.run(controller, 20)
    assert controller.threads == 2
    assert lines == ["threads 1 -> 2: a step took 60 ms at 2 vs 100 ms at 1 (the load on the CPU changed)"]


def test_a_steady_partial_load_does_not_make_the_probe_try_again_and_again():
    controller, lines, calls = make(start=1, period=1000, max_period=1000, trial=4, warmup=0,
                                    other_load=lambda: 0.2, probe_s=0.5)
    simulate(controller, {2: 0.30, 1: 0.10}, 500)  # two threads lose beside a process using a fifth of a core
    assert controller.threads == 1 and lines == []
    assert calls.count(2) == 1  # one trial when the probe first saw the core free, none after


def test_other_load_counts_the_busy_time_of_other_processes_only(monkeypatch):
    import psutil

    from resnetlab.training import threads

    row_type = type(psutil.cpu_times(percpu=True)[0])
    state = {"busy": 0.0, "idle": 0.0, "own": 0.0, "wall": 0.0}

    def cpu_times(percpu: bool):
        assert percpu
        row = dict.fromkeys(row_type._fields, 0.0)
        row.update(user=state["busy"] / 2, idle=state["idle"] / 2)
        return [row_type(**row)] * 2

    monkeypatch.setattr(psutil, "cpu_times", cpu_times)
    monkeypatch.setattr(threads.time, "process_time", lambda: state["own"])
    monkeypatch.setattr(threads.time, "monotonic", lambda: state["wall"])
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    probe = OtherLoad()
    # Two seconds: the two cores were busy 3 s in all, 2 s of them ours (our threads), 1 s another process's.
    state.update(busy=3.0, idle=1.0, own=2.0, wall=2.0)
    assert probe() == 0.5
    state.update(busy=5.0, idle=3.0, own=4.0, wall=4.0)  # only our own use since: nobody else
    assert probe() == 0.0


def test_a_change_of_speed_is_only_answered_in_its_own_direction():
    controller, lines, calls = make(start=2, period=1000, trial=4, warmup=0)
    simulate(controller, {2: 0.30, 1: 0.35}, 10)
    simulate(controller, {2: 0.10, 1: 0.20}, 20)  # faster at the maximum: no count above it to try
    assert calls == [] and controller.threads == 2
    controller, lines, calls = make(start=1, period=1000, trial=4, warmup=0)
    simulate(controller, {2: 0.30, 1: 0.10}, 10)
    simulate(controller, {2: 0.60, 1: 0.20}, 20)  # slower at one thread: no count below it to try
    assert calls == [] and controller.threads == 1 and lines == []


def test_keeps_the_count_and_backs_off_when_the_other_count_is_slower():
    controller, lines, calls = make(period=10, trial=4, warmup=0)
    simulate(controller, {2: 0.10, 1: 0.19}, 200)
    assert controller.threads == 2 and controller.current == 2 and lines == []
    # Trials at 10, 20, 40, 80 steps apart: each failed trial doubles the wait before the next.
    assert calls.count(1) == 4 and controller.period == 160


def test_small_differences_do_not_make_the_count_flap():
    controller, lines, _ = make(period=10, trial=4, warmup=0, margin=0.1)
    simulate(controller, {2: 0.100, 1: 0.095}, 100)
    assert controller.threads == 2 and lines == []


def test_step_done_times_the_interval_between_calls():
    clock = iter([0.0, 0.0, 0.5, 0.5, 1.5, 1.5])
    recorded: list[float] = []
    controller = ThreadController(2, maximum=2, clock=lambda: next(clock), set_threads=lambda n: None, warmup=0)
    controller.record = recorded.append  # type: ignore[method-assign]
    for _ in range(3):
        controller.step_done()
    assert recorded == [0.5, 1.0]


def test_an_explicit_thread_count_or_a_deterministic_run_is_kept_without_a_controller(monkeypatch):
    from resnetlab.training import threads

    monkeypatch.setattr(threads, "free_cores", lambda: 1)
    monkeypatch.setattr(threads, "physical_cores", lambda: 2)
    before = torch.get_num_threads()
    try:
        assert start_threads(1, device=torch.device("cpu")) is None
        assert torch.get_num_threads() == 1
        assert start_threads(0, device=torch.device("cpu"), deterministic=True) is None
        assert torch.get_num_threads() == 2  # one per physical core, whatever the load
        assert start_threads(0, device=torch.device("cpu"), log=lambda line: None) is not None
    finally:
        torch.set_num_threads(before)


def run_python(code: str, env: dict[str, str]) -> str:
    src = os.path.join(os.path.dirname(__file__), "..", "..", "src")
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")}
    return subprocess.run([sys.executable, "-c", code], env={**clean, "PYTHONPATH": src, **env},
                          capture_output=True, text=True, check=True).stdout.strip()


def test_importing_resnetlab_sets_a_short_spin_and_then_sleep_before_torch_loads():
    code = ("import resnetlab, os, sys; "
            "print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'), 'torch' in sys.modules)")
    assert run_python(code, {}) == "PASSIVE 1000 False"


def test_a_users_own_openmp_setting_wins():
    code = "import resnetlab, os; print(os.environ.get('OMP_WAIT_POLICY'), os.environ['GOMP_SPINCOUNT'])"
    assert run_python(code, {"GOMP_SPINCOUNT": "1000"}) == "None 1000"
    code = "import resnetlab, os; print(os.environ['OMP_WAIT_POLICY'])"
    assert run_python(code, {"OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"


def test_the_cli_entry_sets_the_wait_policy_before_torch_loads():
    code = "import resnetlab.cli.main, os, sys; print(os.environ.get('OMP_WAIT_POLICY'), os.environ['GOMP_SPINCOUNT'])"
    assert run_python(code, {}) == "PASSIVE 1000"


def test_a_training_run_with_automatic_threads_starts_at_the_free_cores_and_times_every_step(tmp_path, monkeypatch):
    import resnetlab
    from resnetlab.training import threads

    monkeypatch.setattr(threads, "free_cores", lambda: 1)
    monkeypatch.setattr(threads, "physical_cores", lambda: 2)
    steps: list[int] = []
    monkeypatch.setattr(ThreadController, "step_done", lambda self: steps.append(self.threads))
    before = torch.get_num_threads()
    try:
        result = resnetlab.train(["preset=test", "train.threads=0", "train.deterministic=false", "train.epochs=2",
                                  f"output.dir={tmp_path}"])
    finally:
        torch.set_num_threads(before)
    log = (result.run_dir / "train.log").read_text()
    assert "threads: 1 of 2 cores are free now" in log
    # preset test: 128 training images (data.subset) at batch 32, two epochs: one call per optimizer step
    assert steps == [1] * 8
