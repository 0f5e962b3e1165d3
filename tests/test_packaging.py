"""The wheel users install: it holds the presets, the built-in studies, py.typed and the license,
declares the extras, and its `resnetlab` command trains from the installed files alone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PACKAGE = ROOT / "src" / "resnetlab"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # Built from a copy, so no build/ or egg-info lands in the source tree; without isolation,
    # so it works offline with the setuptools of this environment (the dev extra brings it).
    tree = tmp_path_factory.mktemp("tree")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, tree / name)
    shutil.copytree(ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "--disable-pip-version-check", "-q", "-w", str(out), str(tree)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (built,) = out.glob("resnetlab-*.whl")
    return built


def test_the_wheel_holds_every_yaml_py_typed_and_the_license(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    data = {f"resnetlab/{p.relative_to(PACKAGE).as_posix()}" for p in PACKAGE.rglob("*")
            if p.suffix in (".yaml", ".yml", ".typed")}
    assert len(data) > 15 and "resnetlab/py.typed" in data
    assert data <= names, sorted(data - names)
    sources = {f"resnetlab/{p.relative_to(PACKAGE).as_posix()}" for p in PACKAGE.rglob("*.py")}
    assert sources <= names, sorted(sources - names)
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)


def test_the_metadata_declares_the_extras_and_no_torch_cap(wheel):
    archive = zipfile.ZipFile(wheel)
    meta = Parser().parsestr(archive.read(next(n for n in archive.namelist() if n.endswith("METADATA"))).decode())
    assert {"search", "tensorboard", "baseline", "all", "dev"} <= set(meta.get_all("Provides-Extra"))
    requires = meta.get_all("Requires-Dist")
    torch = next(r for r in requires if r.startswith("torch"))
    assert torch.replace(" ", "") == "torch>=2.2"
    core = {r.split(">")[0].split(";")[0].strip() for r in requires if "extra ==" not in r}
    assert not core & {"optuna", "tensorboard", "scikit-image", "sqlalchemy"}
    assert meta["License-Expression"] == "MIT"
    assert "resnetlab = resnetlab.cli.main:main" in archive.read(
        next(n for n in archive.namelist() if n.endswith("entry_points.txt"))).decode()


def test_the_installed_command_trains_from_the_wheel_alone(wheel, tmp_path):
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check", "-q",
                           "--target", str(site), str(wheel)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    env = {**os.environ, "PYTHONPATH": str(site)}  # the installed copy only, not the source tree

    def resnetlab(*argv: str) -> str:
        run = subprocess.run([sys.executable, str(site / "bin" / "resnetlab"), *argv], capture_output=True,
                             text=True, env=env, cwd=tmp_path, timeout=300)
        assert run.returncode == 0, run.stderr
        return run.stdout

    where = subprocess.run([sys.executable, "-c", "import resnetlab; print(resnetlab.__file__)"], env=env,
                           capture_output=True, text=True, cwd=tmp_path).stdout
    assert where.startswith(str(site))
    assert "quick" in resnetlab("config", "--presets") and "resnet_vs_hog" in resnetlab("study", "--list")
    out = resnetlab("train", "preset=test", "data.subset=32", "train.threads=1", f"output.dir={tmp_path / 'runs'}",
                    "output.name=r")
    assert "run folder:" in out and (tmp_path / "runs" / "r" / "metrics.json").is_file()
