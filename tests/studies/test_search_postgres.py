"""Search across machines: workers that share one trial budget through a real PostgreSQL server.

A throw-away server (Debian's postgresql: initdb + pg_ctl on a temporary folder and a free port)
stands in for the database machines would share. Skipped, with the reason, where the server's
binaries or the psycopg driver are missing (`make test` installs both when it can).
"""

from __future__ import annotations

import contextlib
import csv
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import yaml

from resnetlab.studies import load_search, run_search
from resnetlab.studies import search as search_module
from resnetlab.studies.search import open_storage

pytest.importorskip("psycopg", reason="the PostgreSQL driver is missing: pip install 'resnetlab[postgres]'")


def _server_binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """postgresql://resnetlab@127.0.0.1:<port>/postgres of a server that lives as long as this module."""
    bin_dir = _server_binaries()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin "
                    "(apt-get install postgresql)")
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="resnetlab-pg-"))
    if os.geteuid() == 0:  # initdb refuses root: run the server as Debian's postgres user
        if shutil.which("runuser") is None or subprocess.run(["id", "postgres"], capture_output=True).returncode:
            shutil.rmtree(folder)
            pytest.skip("running as root without a 'postgres' user (or runuser) to start the server as")
        shutil.chown(folder, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", _free_port()

    def run(*command: str) -> None:
        done = subprocess.run([*as_user, *command], capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")

    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", "resnetlab", "-A", "trust", "--no-sync", "-E", "UTF8")
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-w", "-t", "60",
            "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    try:
        yield f"postgresql://resnetlab@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True, timeout=120)
        shutil.rmtree(folder, ignore_errors=True)


def _search_file(folder: Path) -> Path:
    data = {"base": ["preset=test", "train.epochs=2", "train.threads=1"],
            "space": {"optim.lr": {"type": "loguniform", "low": 1.0e-3, "high": 0.3}},
            "pruner": {"name": "none"}, "sampler": {"name": "random"}}
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _trial_rows(out: Path) -> list[tuple[str, str, str, str]]:
    with open(out / "trials.csv", newline="") as handle:
        return sorted((row["number"], row["state"], row["value"], row["worker"]) for row in csv.DictReader(handle))


def _counted(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials() if not t.user_attrs.get("surplus")]


def test_two_workers_on_two_machines_share_one_budget(tmp_path: Path, postgres_url: str) -> None:
    spec = _search_file(tmp_path)
    # Each worker has its own search folder, as on two machines; only the database is shared.
    outs = [tmp_path / "machine_a" / "tiny", tmp_path / "machine_b" / "tiny"]
    workers = [subprocess.Popen([sys.executable, "-m", "resnetlab", "search", str(spec), "--trials", "5",
                                 "--storage", postgres_url, "--out", str(out)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for out in outs]
    logs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], logs

    study = optuna.load_study(study_name="tiny", storage=open_storage(postgres_url))
    trials = _counted(study)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 5  # exactly the budget, over both workers
    assert len({t.user_attrs["worker"] for t in trials}) == 2
    for trial in trials:  # each trial's run folder is on the machine that trained it
        assert sum((out / f"trial_{trial.number}" / "metrics.json").is_file() for out in outs) == 1
    # Both saw the same study: their reports list the same trials in the same states.
    assert _trial_rows(outs[0]) == _trial_rows(outs[1])
    assert [int(row[0]) for row in _trial_rows(outs[0])] == sorted(t.number for t in trials)


def test_a_dead_worker_s_trial_is_taken_over(tmp_path: Path, postgres_url: str, monkeypatch) -> None:
    """A worker killed mid-trial stops its heartbeat; the other fails that trial once the grace
    period is over and trains what is left of the budget."""
    spec = _search_file(tmp_path)
    study_name = "takeover"
    dead = subprocess.Popen([sys.executable, "-m", "resnetlab", "search", str(spec), "--trials", "3", "--storage",
                             postgres_url, "--study-name", study_name, "--out", str(tmp_path / "a")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):  # the study may not exist yet
                study = optuna.load_study(study_name=study_name, storage=open_storage(postgres_url))
                if any(t.state.name == "RUNNING" for t in study.get_trials()):
                    break  # its first trial started: kill it now, long before it can finish
            assert dead.poll() is None, "the first worker ended before starting a trial"
            time.sleep(0.1)
        else:
            pytest.fail("the first worker started no trial within 300 s")
    finally:
        os.killpg(dead.pid, signal.SIGKILL)
        dead.wait(timeout=60)

    # The survivor runs in this process with a short grace period instead of minutes.
    monkeypatch.setattr(search_module, "HEARTBEAT_S", 1)
    monkeypatch.setattr(search_module, "GRACE_S", 3)
    outcome = run_search(load_search(spec), trials=3, storage=postgres_url,
                         study_name=study_name, out=tmp_path / "b", echo=lambda line: None)
    study = optuna.load_study(study_name=study_name, storage=open_storage(postgres_url))
    states = [t.state.name for t in _counted(study)]
    assert states[0] == "FAIL" and states[1:] == ["COMPLETE"] * 3
    assert outcome.trained == 3


def test_a_missing_driver_names_the_extra(monkeypatch) -> None:
    from resnetlab.errors import UserError

    for module in ("psycopg", "psycopg2"):
        monkeypatch.setitem(sys.modules, module, None)  # makes the import raise ImportError
    with pytest.raises(UserError, match=r"--storage postgresql://u@localhost:1/db: its database driver is not "
                                        r"installed \(.*\); pip install 'resnetlab\[postgres\]'"):
        open_storage("postgresql://u@localhost:1/db")
