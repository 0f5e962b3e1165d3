import dataclasses

import pytest
import yaml

from resnetlab.config import Config, OutputConfig, all_keys, build_config, list_presets, load_config, to_dict
from resnetlab.errors import UserError


def test_defaults_round_trip_through_yaml(tmp_path):
    cfg = build_config()
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(to_dict(cfg)))
    assert load_config(path) == cfg


@pytest.mark.parametrize("name", list_presets())
def test_every_preset_validates(name):
    cfg = build_config([f"preset={name}"])
    assert isinstance(cfg, Config)


def test_seed_presets_exist():
    assert {"resnet18", "resnet18_frozen", "resnet34", "resnet50", "debug", "test", "quick",
            "cifar-resnet18"} <= set(list_presets())


def test_overrides_are_typed_and_applied_in_order():
    cfg = build_config(["preset=resnet34", "optim.lr=1e-3", "train.epochs=7", "augment.enabled=false",
                        "data.mean=[0.5]", "optim.lr=0.01"])
    assert cfg.model.name == "resnet34"
    assert cfg.optim.lr == 0.01 and isinstance(cfg.optim.lr, float)
    assert cfg.train.epochs == 7 and cfg.augment.enabled is False
    assert cfg.data.mean == [0.5]


def test_a_typed_key_wins_over_a_preset_wherever_it_stands(tmp_path):
    (tmp_path / "exp.yaml").write_text("train: {epochs: 4, batch_size: 8}\n")
    cfg = build_config(["train.epochs=1", "preset=resnet18_frozen", f"config={tmp_path / 'exp.yaml'}"])
    assert cfg.train.epochs == 1  # the preset (50) and the file (4) come first
    assert cfg.train.batch_size == 8 and cfg.model.freeze == "backbone"  # the file over the preset, in order
    assert build_config(["preset=resnet18_frozen", "preset=quick"]).train.epochs == 8  # presets in order


def test_preset_inherits_from_base():
    cfg = build_config(["preset=resnet18_frozen"])
    assert cfg.model.freeze == "backbone" and cfg.optim.name == "adamw"


def test_stage_list_parses():
    cfg = build_config(["train.stages=[{epochs: 2, freeze: backbone}, {epochs: 3, lr: 1.0e-4}]"])
    assert [s.epochs for s in cfg.train.stages] == [2, 3]
    assert cfg.train.stages[1].lr == 1e-4 and cfg.train.stages[1].freeze == "none"


def test_config_file_with_preset(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("preset: debug\ntrain:\n  epochs: 5\n")
    cfg = build_config([f"config={path}", "train.batch_size=8"])
    assert cfg.model.name == "resnet20" and cfg.train.epochs == 5 and cfg.train.batch_size == 8


@pytest.mark.parametrize("tokens, message", [
    (["optim.lrr=1"], "unknown config key 'optim.lrr'; did you mean 'optim.lr'?"),
    (["trian.epochs=3"], "did you mean 'train'?"),
    (["epochs=3"], "did you mean 'train.epochs'?"),
    (["optim.lr=abc"], "config key 'optim.lr' takes a number, got 'abc'"),
    (["optim.name=adan"], "did you mean 'adam'?; accepted: sgd, adam, adamw"),
    (["train.epochs=0"], "config key 'train.epochs' must be >= 1, got 0"),
    (["train.epochs=2.5"], "config key 'train.epochs' takes a whole number, got 2.5"),
    (["augment.enabled=maybe"], "config key 'augment.enabled' takes true or false"),
    (["augment.hflip=1.5"], "config key 'augment.hflip' must be <= 1.0"),
    (["lr"], "overrides are key=value"),
    (["preset=quik"], "unknown preset 'quik'; did you mean 'quick'?"),
    (["train.stages=[{epochs: 2, frezze: backbone}]"], "did you mean 'train.stages[0].freeze'?"),
    (["optim=3"], "config key 'optim' is a section, not a value: set its keys, e.g. optim.name="),
    (["data.channels=2"], "accepted: none, 1, 3"),
])
def test_bad_overrides_name_the_key(tokens, message):
    with pytest.raises(UserError) as err:
        build_config(tokens)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_bad_yaml_file_names_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("train:\n  epochs: [1,\n")
    with pytest.raises(UserError, match=r"broken.yaml is not valid YAML at line"):
        build_config([f"config={path}"])


def test_missing_config_file():
    with pytest.raises(UserError, match="not found"):
        build_config(["config=/nonexistent/x.yaml"])


def test_all_keys_covers_every_section():
    keys = all_keys()
    assert "optim.lr" in keys and "data.source" in keys and "train.monitor" in keys
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize("name", ["../escape", "a/b", "a\\b", ".", ".."])
def test_output_name_must_be_a_plain_folder_name(name):
    with pytest.raises(UserError, match="config key 'output.name' must be a plain folder name") as err:
        build_config([f"output.name={name}"])
    assert "\n" not in str(err.value)
    assert build_config(["output.name=run.v2"]).output.name == "run.v2"


def test_a_misspelt_key_set_from_python_is_refused_with_the_closest_one():
    cfg = build_config(["preset=test"])
    with pytest.raises(AttributeError, match="OptimConfig has no config key 'lrr'; did you mean 'lr'"):
        cfg.optim.lrr = 0.1
    with pytest.raises(AttributeError, match="did you mean 'optim'"):
        cfg.optm = None
    cfg.optim.lr = 0.5  # real keys stay assignable, and copies keep working
    assert dataclasses.replace(cfg.optim, lr=0.2).lr == 0.2 and to_dict(cfg)["optim"]["lr"] == 0.5


@pytest.mark.parametrize("key, value, message", [
    ("optim", ("lr", -5), "config key 'optim.lr' must be >= 0.0, got -5"),
    ("output", ("name", "../escape"), "config key 'output.name' must be a plain folder name"),
    ("train", ("epochs", "three"), "config key 'train.epochs' takes a whole number"),
])
def test_train_validates_a_config_object_before_loading_data(tmp_path, monkeypatch, key, value, message):
    import resnetlab
    from resnetlab.api import training

    monkeypatch.setattr(training, "load_data", lambda *a, **k: pytest.fail("data loaded before validation"))
    cfg = build_config(["preset=test", f"output.dir={tmp_path / 'runs'}", "output.name=r"])
    setattr(getattr(cfg, key), *value)
    with pytest.raises(UserError, match=message):
        resnetlab.train(cfg)
    assert list(tmp_path.iterdir()) == []  # no run folder, inside output.dir or outside it


def test_progress_help_says_what_false_hides_and_that_train_log_keeps_it():
    help = {f.name: f.metadata["help"] for f in dataclasses.fields(OutputConfig)}["progress"]
    assert "banner" in help and "final line" in help and "train.log" in help


def test_settings_are_laid_over_every_override_as_plain_values():
    cfg = build_config(["train.epochs=3", "preset=test", "output.name=a"],
                       settings={"train.epochs": 2, "output.name": "yes", "optim.betas": [0.8, 0.9]})
    assert cfg.train.epochs == 2 and cfg.optim.betas == [0.8, 0.9]
    assert cfg.output.name == "yes"  # as given: a token output.name=yes would read as true
    assert cfg.data.subset == build_config(["preset=test"]).data.subset  # the preset still applies
    with pytest.raises(UserError, match="unknown config key 'optim.lrr'"):
        build_config(settings={"optim.lrr": 0.1})
