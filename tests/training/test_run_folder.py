"""The run folder: named inside output.dir, never overwritten."""

import pytest

from resnetlab.errors import UserError
from resnetlab.training.run_folder import make_run_dir


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", "."])
def test_a_run_folder_never_lands_outside_its_root(tmp_path, name):
    root = tmp_path / "runs"
    with pytest.raises(UserError, match="run folder name must be a plain folder name"):
        make_run_dir(root, name, resuming=False, generated=False)
    assert not (tmp_path / "escape").exists() and not root.exists()


def test_a_plain_name_is_created_and_a_taken_generated_one_gets_a_suffix(tmp_path):
    assert make_run_dir(tmp_path, "run.v2", resuming=False, generated=False) == tmp_path / "run.v2"
    (tmp_path / "run.v2" / "config.yaml").write_text("")
    assert make_run_dir(tmp_path, "run.v2", resuming=False, generated=True) == tmp_path / "run.v2-2"
    with pytest.raises(UserError, match="holds a run that stopped before its first checkpoint; train.resume=auto"):
        make_run_dir(tmp_path, "run.v2", resuming=False, generated=False)  # e.g. it crashed in its first step
    (tmp_path / "run.v2" / "last.pt").write_bytes(b"")
    with pytest.raises(UserError, match="already holds a run; resume it"):
        make_run_dir(tmp_path, "run.v2", resuming=False, generated=False)
