"""One atomic write for every file: whole files only, even with several writers at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from resnetlab.atomic_write import atomic_write, atomic_write_file, temp_path, write_json, write_text


def _payload(writer: int, round_: int) -> dict:
    # Large enough that a write takes several system calls, so a torn file would show.
    return {"writer": writer, "round": round_, "data": [writer * 1000 + round_] * 50_000}


def test_write_json_round_trips_numpy_and_leaves_no_temporary(tmp_path):
    path = write_json(tmp_path / "sub" / "a.json", {"x": np.float32(0.5), "v": np.arange(3), "p": Path("q")})
    assert json.loads(path.read_text()) == {"x": 0.5, "v": [0, 1, 2], "p": "q"}
    assert [p.name for p in path.parent.iterdir()] == ["a.json"]


def test_a_failing_writer_keeps_the_old_file_and_removes_its_temporary(tmp_path):
    path = write_text(tmp_path / "report.md", "old\n")

    def half(handle):
        handle.write(b"new, but")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, half)
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_temporary_names_differ_per_call_and_stay_beside_the_file(tmp_path):
    names = {temp_path(tmp_path / "x.json") for _ in range(100)}
    assert len(names) == 100
    assert all(n.parent == tmp_path and n.name.startswith(".x.json.") and n.name.endswith(".tmp") for n in names)


def test_threads_writing_one_file_never_collide_or_tear_it(tmp_path):
    path = tmp_path / "all_results.json"
    write_json(path, _payload(0, 0))
    errors: list[BaseException] = []
    stop = threading.Event()
    reads = []

    def writer(k: int) -> None:
        try:
            for r in range(15):
                write_json(path, _payload(k, r))
        except BaseException as exc:  # a shared temporary name fails here (FileNotFoundError on rename)
            errors.append(exc)

    def reader() -> None:
        while not stop.is_set():
            data = json.loads(path.read_text())  # a torn file fails to parse
            assert data["data"] == [data["writer"] * 1000 + data["round"]] * 50_000
            reads.append(1)

    threads = [threading.Thread(target=writer, args=(k,)) for k in (1, 2, 3)]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watcher.join()
    assert not errors
    assert json.loads(path.read_text())["round"] == 14
    assert reads
    assert [p.name for p in tmp_path.iterdir()] == ["all_results.json"]


def test_processes_writing_one_file_never_collide_or_tear_it(tmp_path):
    path = tmp_path / "trials.csv"
    script = (
        "import sys\n"
        "from resnetlab.atomic_write import write_text\n"
        "k = sys.argv[2]\n"
        "for r in range(20):\n"
        "    write_text(sys.argv[1], (k + str(r) + ',') * 100_000 + '\\n')\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path), k], env=env, stderr=subprocess.PIPE)
             for k in ("a", "b")]
    seen = 0
    while any(p.poll() is None for p in procs):
        if path.exists():
            text = path.read_text()
            cells = text.rstrip("\n").rstrip(",").split(",")
            assert len(cells) == 100_000 and len(set(cells)) == 1, "a reader saw a torn or mixed file"
            seen += 1
    for p in procs:
        assert p.wait() == 0, p.stderr.read().decode()
    assert [p.name for p in tmp_path.iterdir()] == ["trials.csv"]


def test_writers_that_take_a_file_name_get_one_with_the_suffix(tmp_path):
    seen = []

    def save(tmp: Path) -> None:
        seen.append(tmp)
        np.save(tmp, np.arange(3))  # np.save adds .npy unless the name ends in it

    path = atomic_write_file(tmp_path / "x.npy", save)
    assert seen[0].suffix == ".npy" and seen[0].parent == tmp_path
    assert np.load(path).tolist() == [0, 1, 2]

    def broken(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise RuntimeError("exporter failed")

    with pytest.raises(RuntimeError):
        atomic_write_file(path, broken)
    assert np.load(path).tolist() == [0, 1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["x.npy"]
