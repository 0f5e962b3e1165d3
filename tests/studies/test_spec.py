"""Study and search files: parsing, variant names, and every mistake as a one-line UserError."""

import pytest
import yaml

from resnetlab.config import build_config
from resnetlab.errors import UserError
from resnetlab.studies.runner import last_error_line, plan_study
from resnetlab.studies.spec import (
    builtin_names,
    builtin_studies,
    changed_settings,
    check_metric,
    config_tokens,
    load_search,
    load_study,
    parse_search,
    parse_study,
)


def study(**data):
    return parse_study(data, name="s", source="s.yaml")


def test_vary_one_factor_names_variants_by_value():
    spec = study(base=["preset=test"], vary={"optim.lr": [1.0e-4, 1.0e-3, "1e-2"]})
    assert [v.name for v in spec.variants] == ["0.0001", "0.001", "1e-2"]
    assert [v.settings for v in spec.variants] == [{"optim.lr": 1e-4}, {"optim.lr": 1e-3}, {"optim.lr": "1e-2"}]
    assert spec.baseline == "0.0001" and spec.seeds is None and spec.metric is None
    assert spec.factors == ["optim.lr"]


def test_vary_several_factors_changes_one_at_a_time():
    spec = study(vary={"model.name": ["resnet18", "resnet34"], "data.image_size": [16, 32]},
                 baseline="image_size-32")
    assert [v.name for v in spec.variants] == ["name-resnet18", "name-resnet34", "image_size-16", "image_size-32"]
    assert all(len(v.settings) == 1 for v in spec.variants)
    assert spec.baseline == "image_size-32"


def test_variant_mappings_set_several_keys_at_once():
    spec = study(vary={"optimizer": [{"name": "adam", "optim.name": "adam", "optim.lr": 1.0e-3},
                                     {"optim.name": "sgd", "optim.lr": 0.05, "optim.momentum": 0.9}]},
                 seeds=3, baseline="sgd_0.05_0.9", metric="test/accuracy")
    assert spec.variants[0].name == "adam"
    assert spec.variants[0].settings == {"optim.name": "adam", "optim.lr": 1e-3}
    assert spec.variants[1].name == "sgd_0.05_0.9"
    assert spec.factors == ["optim.name", "optim.lr", "optim.momentum"]
    assert spec.seeds == 3 and spec.metric == "test/accuracy"


def test_grid_is_the_full_product():
    spec = study(grid={"optim.lr": [0.01, 0.1], "augment.enabled": [True, False],
                       "model": [{"name": "r18", "model.name": "resnet18"}]})
    assert len(spec.variants) == 4
    assert spec.variants[0].name == "lr-0.01_enabled-true_r18"
    assert spec.variants[3].settings == {"optim.lr": 0.1, "augment.enabled": False, "model.name": "resnet18"}


def test_base_mapping_and_preset_become_tokens():
    spec = study(preset="test", base={"optim": {"lr": 0.02}, "augment.rotation": 5.0}, vary={"train.epochs": [1, 2]})
    assert spec.base == ["preset=test", "optim.lr=0.02", "augment.rotation=5.0"]


def test_plan_seeds_and_folders(tmp_path):
    spec = study(base=["preset=test"], vary={"optim.lr": [0.01, 0.1]}, seeds=2)
    runs = plan_study(spec, overrides=["train.epochs=2"], out=tmp_path / "s")
    assert [r.name for r in runs] == ["0.01_seed0", "0.1_seed0", "0.01_seed1", "0.1_seed1"]
    assert runs[2].config.train.seed == 1 and runs[2].config.optim.lr == 0.01
    assert runs[2].config.train.epochs == 2 and runs[2].config.output.name == "0.01_seed1"
    assert all(r.config.data.split_seed == runs[0].config.data.split_seed for r in runs)
    assert runs[0].run_dir == tmp_path / "s" / "0.01_seed0"


def test_variant_keys_win_over_command_line_overrides(tmp_path):
    spec = study(base=["preset=test"], vary={"optim.lr": [0.3]})
    run = plan_study(spec, overrides=["optim.lr=0.01", "train.epochs=3"], out=tmp_path)[0]
    assert run.config.optim.lr == 0.3 and run.config.train.epochs == 3


def test_an_impossible_value_fails_its_run_not_the_plan(tmp_path):
    spec = study(base=["preset=test"], vary={"optim.lr": [0.1, -1]})
    runs = plan_study(spec, out=tmp_path)
    assert runs[0].error is None
    assert runs[1].config is None and "optim.lr" in runs[1].error


@pytest.mark.parametrize("value", [[0.9, 0.99], None, "a: b", "none", True, 1.0e-5,
                                   [{"epochs": 1, "freeze": "backbone"}]])
def test_config_tokens_read_back_as_the_same_value(value):
    key = {list: "optim.betas", type(None): "data.subset", str: "model.freeze", bool: "augment.enabled",
           float: "optim.lr"}[type(value)]
    if isinstance(value, list) and isinstance(value[0], dict):
        key = "train.stages"
    cfg = build_config(config_tokens({key: value}))
    section, name = key.split(".")
    got = getattr(getattr(cfg, section), name)
    if key == "train.stages":
        got = [{"epochs": s.epochs, "freeze": s.freeze} for s in got]
    assert got == value


@pytest.mark.parametrize("name", builtin_studies())
def test_every_builtin_loads_and_builds_its_configs(name, tmp_path):
    if name == "hparams":
        spec = load_search(name)
        assert spec.direction == "maximize" and spec.space
        return
    spec = load_study(name)
    runs = plan_study(spec, out=tmp_path)
    assert runs and all(r.error is None for r in runs)
    # Built on digits (embedded), except the speed-run ablation, which is about Fashion-MNIST.
    assert all(r.config.data.source == ("fashion-mnist" if name.startswith("fmnist") else "digits") for r in runs)


def test_optimizer_builtin_gives_each_optimizer_its_own_lr(tmp_path):
    runs = plan_study(load_study("optimizer"), overrides=["data.source=digits"], out=tmp_path)
    lrs = {r.config.optim.name: r.config.optim.lr for r in runs}
    assert set(lrs) == {"adam", "adamw", "sgd"} and lrs["sgd"] > 10 * lrs["adam"]


def test_study_file_from_disk_with_relative_config(tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump({"train": {"epochs": 4}}))
    (tmp_path / "my.yaml").write_text(yaml.safe_dump({"base": ["preset=test", "config=base.yaml"],
                                                      "vary": {"optim.lr": [0.1]}}))
    spec = load_study(tmp_path / "my.yaml")
    assert spec.name == "my"
    assert plan_study(spec, out=tmp_path / "out")[0].config.train.epochs == 4


BAD_STUDIES = [
    ({"vary": {"optim.lr": [0.1]}, "seed": 3}, "unknown study key 'seed'; did you mean 'seeds'?"),
    ({"vary": {"optim.lr": [0.1]}, "grid": {"optim.lr": [0.1]}}, "either vary:"),
    ({"seeds": 2}, "either vary:"),
    ({"vary": [0.1, 0.2]}, "vary: takes a mapping"),
    ({"vary": {"optim.lr": []}}, "vary: optim.lr takes a non-empty list"),
    ({"vary": {"optim.lr": 0.1}}, "vary: optim.lr takes a non-empty list"),
    ({"vary": {"optim.lrr": [0.1]}}, "unknown config key 'optim.lrr'; did you mean 'optim.lr'?"),
    ({"vary": {"optimizer": ["adam"]}}, "vary: optimizer is not a config key"),
    ({"vary": {"opt": [{"optim.nme": "adam"}]}}, "unknown config key 'optim.nme'"),
    ({"vary": {"opt": [{"name": "x"}]}}, "must set at least one config key"),
    ({"vary": {"output.name": ["a"]}}, "may not set output.name"),
    ({"vary": {"train.seed": [1, 2]}, "seeds": 2}, "sets train.seed and seeds: is given"),
    ({"vary": {"optim.lr": [0.1]}, "seeds": 0}, "seeds: takes a whole number >= 1"),
    ({"vary": {"optim.lr": [0.1]}, "seeds": True}, "seeds: takes a whole number >= 1"),
    ({"vary": {"optim.lr": [0.1]}, "seeds": "3"}, "seeds: takes a whole number >= 1"),
    ({"vary": {"optim.lr": [0.1, 0.2]}, "baseline": "0.3"}, "baseline: '0.3' is not a variant"),
    ({"vary": {"optim.lr": [0.1]}, "metric": "accuracy"}, "metric: takes split/name"),
    ({"vary": {"optim.lr": [0.1]}, "metric": "train/accuracy"}, "metric: takes split/name"),
    ({"vary": {"optim.lr": [0.1, 0.1]}}, "two variants are named '0.1'"),
    ({"vary": {"optim.lr": [0.1]}, "base": ["preset=nope"]}, "base: unknown preset 'nope'"),
    ({"vary": {"optim.lr": [0.1]}, "base": ["optim.lrr=1"]}, "base: unknown config key 'optim.lrr'"),
    ({"vary": {"optim.lr": [0.1]}, "base": [{"optim.lr": 1}]}, "base: takes override tokens"),
    ({"vary": {"optim.lr": [0.1]}, "base": 3}, "base: takes a list of override tokens or a mapping"),
    ({"vary": {"optim.lr": [0.1]}, "preset": ["quick"]}, "preset: takes a preset name"),
    ({"grid": {"a": [{"optim.lr": 0.1}], "b": [{"optim.lr": 0.2}]}}, "sets optim.lr, which another factor"),
    ({"vary": {"opt": [{"name": "plots", "optim.lr": 0.1}]}}, "variant name 'plots' is reserved"),
]


@pytest.mark.parametrize("data,message", BAD_STUDIES)
def test_study_mistakes_are_one_line_user_errors(data, message):
    with pytest.raises(UserError) as info:
        study(**data)
    text = str(info.value)
    assert message in text and "\n" not in text and text.startswith("s.yaml")


def search(**data):
    data.setdefault("space", {"optim.lr": {"type": "loguniform", "low": 1.0e-4, "high": 0.1}})
    return parse_search(data, name="x", source="x.yaml")


def test_search_defaults_and_direction():
    spec = search(metric="val/loss")
    assert spec.direction == "minimize" and spec.sampler == {"name": "tpe"} and spec.pruner == {"name": "median"}
    spec = search(space={"optim.name": {"type": "categorical", "choices": ["sgd", "adam"]},
                         "train.batch_size": {"type": "int", "low": 16, "high": 64, "step": 16},
                         "augment.rotation": {"type": "uniform", "low": 0.0, "high": 15}},
                  pruner={"name": "percentile", "percentile": 25.0}, sampler="random", trials=5)
    assert spec.direction == "maximize" and spec.trials == 5
    assert [p.kind for p in spec.space] == ["categorical", "int", "uniform"]
    assert spec.space[1].step == 16 and spec.sampler == {"name": "random"}


BAD_SEARCHES = [
    ({"spaces": {}}, "unknown search key 'spaces'"),
    ({"space": {}}, "space: takes a mapping"),
    ({"space": {"optim.lrr": {"type": "uniform", "low": 0, "high": 1}}}, "unknown config key 'optim.lrr'"),
    ({"space": {"optim.lr": {"type": "log", "low": 0.1, "high": 1}}}, "type: 'log' is not one of"),
    ({"space": {"optim.lr": {"type": "uniform", "low": 1, "high": 0.1}}}, "low (1) must be below high"),
    ({"space": {"optim.lr": {"type": "loguniform", "low": 0, "high": 0.1}}}, "loguniform needs low > 0"),
    ({"space": {"optim.lr": {"type": "uniform", "low": "abc", "high": 0.1}}}, "needs a number low:, got 'abc'"),
    ({"space": {"optim.lr": {"type": "uniform", "low": 0.0, "high": "inf"}}}, "needs a number high:"),
    ({"space": {"train.epochs": {"type": "int", "low": 1, "high": 4, "step": "0.5"}}}, "int needs whole numbers"),
    ({"space": {"optim.lr": {"type": "uniform", "low": 0.1, "high": 1, "step": 2}}},
     "uniform takes low, high, not 'step'"),
    ({"space": {"train.epochs": {"type": "int", "low": 1.5, "high": 4}}}, "int needs whole numbers"),
    ({"space": {"optim.name": {"type": "categorical", "choices": []}}}, "categorical needs choices"),
    ({"space": {"optim.betas": {"type": "categorical", "choices": [[0.9, 0.99]]}}}, "must be single values"),
    ({"space": {"output.name": {"type": "categorical", "choices": ["a"]}}}, "set by the search itself"),
    ({"metric": "test/accuracy"}, "must not look at the test split"),
    ({"direction": "up"}, "direction: takes maximize or minimize"),
    ({"sampler": {"name": "cmaes"}}, "sampler: takes name: one of tpe, random"),
    ({"pruner": {"name": "median", "percentile": 5}}, "pruner: median takes n_startup_trials"),
    ({"pruner": {"name": "percentile"}}, "percentile needs percentile:"),
    ({"trials": 0}, "trials: takes a whole number >= 1"),
]


@pytest.mark.parametrize("data,message", BAD_SEARCHES)
def test_search_mistakes_are_one_line_user_errors(data, message):
    with pytest.raises(UserError) as info:
        search(**data)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_search_numbers_may_be_written_without_a_dot():
    # YAML reads 1e-4 as a string; studies and train.stages accept it, so a search does too.
    spec = search(space={"optim.lr": {"type": "loguniform", "low": "1e-4", "high": "1e-1"},
                         "train.batch_size": {"type": "int", "low": 16, "high": "6.4e1", "step": "16"}})
    assert (spec.space[0].low, spec.space[0].high) == (1e-4, 0.1)
    assert (spec.space[1].low, spec.space[1].high, spec.space[1].step) == (16, 64, 16)
    assert all(isinstance(v, int) for v in (spec.space[1].low, spec.space[1].high, spec.space[1].step))
    from_yaml = yaml.safe_load("space: {optim.lr: {type: uniform, low: 1e-4, high: 0.1}}")
    assert parse_search(from_yaml, name="x", source="x.yaml").space[0].low == 1e-4


def test_metric_names_come_from_the_task():
    check_metric("val/accuracy", "classification", "x.yaml")
    check_metric("test/f1_macro", "classification", "x.yaml")
    check_metric("val/srcc", "regression", "x.yaml")
    with pytest.raises(UserError, match=r"^x.yaml: metric: val/srcc is not a metric of a classification run; "
                                        r"choose one of val/accuracy, "):
        check_metric("val/srcc", "classification", "x.yaml")
    with pytest.raises(UserError, match="did you mean 'test/plcc'"):
        check_metric("test/plc", "regression", "x.yaml")


def test_changed_settings_say_what_was_and_what_is():
    assert changed_settings(["preset=test", "train.epochs=2"], ["preset=test", "train.epochs=1"]) \
        == "train.epochs was 2, now 1"
    assert changed_settings(["preset=test"], ["preset=quick", "optim.lr=0.1"]) \
        == "preset was test, now quick; optim.lr was 0.05, now 0.1"  # 0.05: what preset=test set
    # A key a preset set is shown with that value, not as "not set".
    assert changed_settings(["preset=test"], ["preset=test", "train.epochs=2"]) == "train.epochs was 1, now 2"
    assert changed_settings(["a.b=1", "c.d=2"], ["c.d=2", "a.b=1"]) == "overrides were a.b=1 c.d=2, now c.d=2 a.b=1"


def test_file_mistakes(tmp_path):
    with pytest.raises(UserError, match="no study file or built-in named 'optimiser'; did you mean 'optimizer'"):
        load_study("optimiser")
    with pytest.raises(UserError, match="not found"):
        load_study(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("vary: [1\n")
    with pytest.raises(UserError, match="bad.yaml is not valid YAML"):
        load_study(tmp_path / "bad.yaml")
    with pytest.raises(UserError, match="is a search file"):
        load_study("hparams")
    with pytest.raises(UserError, match="is a study file"):
        load_search("optimizer")
    # Each command lists only the built-ins it runs.
    searches, studies = builtin_names("search"), builtin_names("study")
    assert searches == ["hparams"] and "optimizer" in studies and "hparams" not in studies
    with pytest.raises(UserError, match=r"no search file or built-in named 'nosuch'; built-in searches: hparams$"):
        load_search("nosuch")
    with pytest.raises(UserError, match=r"give a YAML file or one of: hparams$"):
        load_search(tmp_path / "nosuch.yaml")
    with pytest.raises(UserError) as info:
        load_study("nosuch")
    assert f"built-in studies: {', '.join(studies)}" in str(info.value) and "hparams" not in str(info.value)
    with pytest.raises(UserError) as info:
        load_study(tmp_path / "nosuch.yaml")
    assert str(info.value).endswith(f"one of: {', '.join(studies)}")


def test_last_error_line_of_a_worker_log():
    log = "epoch 1/2 ...\nresnetlab train: error: optim.lr must be >= 0.0, got -1.0\n"
    assert last_error_line(log) == "optim.lr must be >= 0.0, got -1.0"
    crash = "Traceback (most recent call last):\n  File \"x.py\", line 1\nRuntimeError: out of memory\n"
    assert last_error_line(crash) == "RuntimeError: out of memory"
    assert last_error_line("nothing useful\n") is None
