"""The thread controller follows simulated step times; the OpenMP wait policy is set before torch loads."""

from __future__ import annotations

import os
import subprocess
import sys

import torch

from resnetlab.training.threads import ThreadController, start_threads


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


def test_importing_resnetlab_sets_a_passive_wait_policy_before_torch_loads():
    code = "import resnetlab, os, sys; print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)"
    assert run_python(code, {}) == "PASSIVE False"


def test_a_users_own_openmp_setting_wins():
    code = "import resnetlab, os; print(os.environ.get('OMP_WAIT_POLICY'), os.environ['GOMP_SPINCOUNT'])"
    assert run_python(code, {"GOMP_SPINCOUNT": "1000"}) == "None 1000"
    code = "import resnetlab, os; print(os.environ['OMP_WAIT_POLICY'])"
    assert run_python(code, {"OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"


def test_the_cli_entry_sets_the_wait_policy_before_torch_loads():
    code = "import resnetlab.cli.main, os, sys; print(os.environ.get('OMP_WAIT_POLICY'))"
    assert run_python(code, {}) == "PASSIVE"


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
