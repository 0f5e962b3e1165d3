"""A command whose library comes with an extra says which extra, in one line, when it is missing.

A None entry in sys.modules makes `import name` raise ImportError, as if it were not installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from resnetlab.cli.main import main

PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"


def _missing(monkeypatch, *modules: str) -> None:
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def test_search_without_optuna_names_the_search_extra(monkeypatch, tmp_path, capsys):
    _missing(monkeypatch, "optuna")
    code = main(["search", "hparams", "--trials", "1", "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code == 2
    assert err == ("resnetlab search: error: resnetlab search needs the search extra: "
                   "pip install 'resnetlab[search]'\n")
    assert not (tmp_path / "s").exists()


def test_the_baseline_without_scikit_image_names_the_baseline_extra(monkeypatch, tmp_path, capsys):
    _missing(monkeypatch, "skimage", "skimage.feature")
    code = main(["baseline", "hog-svm", "data.subset=40", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err == ("resnetlab baseline: error: the HOG+SVM baseline needs the baseline extra: "
                   "pip install 'resnetlab[baseline]'\n")
    assert not any(tmp_path.iterdir())


def test_training_without_tensorboard_says_which_extra_brings_it(monkeypatch, tmp_path):
    from resnetlab.evaluation import tensorboard_log

    _missing(monkeypatch, "torch.utils.tensorboard")
    monkeypatch.setattr(tensorboard_log, "_warned_missing", False)
    with pytest.warns(RuntimeWarning, match=r"pip install 'resnetlab\[tensorboard\]'.*output.tensorboard=false"):
        assert not tensorboard_log.TensorBoardLogger(tmp_path / "tb").enabled


def test_every_extra_named_in_an_error_exists_and_all_holds_every_extra():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    for name in ("search", "tensorboard", "baseline", "export", "mlflow", "postgres"):
        assert extras[name], name
    (everything,) = extras["all"]
    bundled = set(everything.removeprefix("resnetlab[").removesuffix("]").split(","))
    assert bundled == set(extras) - {"all", "dev"}
