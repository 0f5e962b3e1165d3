"""MLflow logging against a local file store, read back through MLflow's own client."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from resnetlab.errors import UserError

mlflow = pytest.importorskip("mlflow")


def test_a_run_logs_params_epoch_metrics_final_scores_and_its_folder(tmp_path: Path, monkeypatch) -> None:
    from mlflow.tracking import MlflowClient

    import resnetlab

    monkeypatch.chdir(tmp_path)  # file:./mlruns, as a user types it
    result = resnetlab.train(overrides=["preset=test", "train.epochs=2", "train.threads=1", "output.mlflow=file:./mlruns",
                                        f"output.dir={tmp_path / 'runs' / 'sweep'}", "output.name=first"])
    client = MlflowClient(tracking_uri="file:./mlruns")
    experiment = client.get_experiment_by_name("sweep")  # the experiment is the folder of the runs
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "first" and run.info.status == "FINISHED"

    params = run.data.params
    assert params["optim.lr"] == "0.05" and params["train.epochs"] == "2"
    assert params["data.split_column"] == "null" and params["output.mlflow"] == "file:./mlruns"
    assert len(params) == len(resnetlab.config.flatten(resnetlab.config.to_dict(resnetlab.build_config(["preset=test"]))))

    history = client.get_metric_history(run.info.run_id, "val/accuracy")
    assert [(m.step, m.value) for m in history] == [(r["epoch"], pytest.approx(r["val/accuracy"]))
                                                     for r in result.history]
    assert run.data.metrics["final/test/accuracy"] == pytest.approx(result.test["accuracy"])
    assert run.data.metrics["final/val/mpca"] == pytest.approx(result.val["mpca"])

    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"best.pt", "config.yaml", "metrics.json", "history.csv", "train.log"} <= artifacts
    assert "last.pt" not in artifacts  # the resume state stays in the run folder
    local = Path(client.download_artifacts(run.info.run_id, "config.yaml", str(tmp_path / "back")))
    assert local.read_bytes() == (result.run_dir / "config.yaml").read_bytes()


def test_a_resumed_run_continues_its_mlflow_run(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from resnetlab.evaluation.mlflow_log import MlflowLogger

    uri = (tmp_path / "mlruns").as_uri()
    run_dir = tmp_path / "runs" / "r"
    run_dir.mkdir(parents=True)
    first = MlflowLogger(uri, run_dir=run_dir, experiment="runs", params={"optim.lr": 0.1, "model.weights": None})
    run_id = first.run_id
    first.log_metrics({"val/accuracy": 0.5}, step=1)
    first.close()  # stopped mid-run
    client = MlflowClient(tracking_uri=uri)
    assert client.get_run(run_id).info.status == "KILLED"

    again = MlflowLogger(uri, run_dir=run_dir, experiment="runs", params={"optim.lr": 0.1, "model.weights": None})
    assert again.run_id == run_id and client.get_run(run_id).info.status == "RUNNING"
    again.finish({"final/val/accuracy": 0.75}, step=2)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.params == {"optim.lr": "0.1", "model.weights": "null"}
    assert [m.value for m in client.get_metric_history(run_id, "val/accuracy")] == [0.5]
    assert len(client.search_runs([run.info.experiment_id])) == 1


def test_without_mlflow_the_error_names_the_extra(tmp_path: Path, monkeypatch) -> None:
    from resnetlab.evaluation.mlflow_log import MlflowLogger

    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)  # makes the import raise ImportError
    with pytest.raises(UserError, match=r"output.mlflow=file:./mlruns needs the mlflow extra: pip install 'resnetlab\[mlflow\]'"):
        MlflowLogger("file:./mlruns", run_dir=tmp_path, experiment="runs", params={})


def test_an_unusable_uri_is_one_line_naming_it(tmp_path: Path) -> None:
    from resnetlab.evaluation.mlflow_log import MlflowLogger

    with pytest.raises(UserError, match=r"^output.mlflow=foo://bar: MLflow cannot open experiment 'runs' there "
                                        r"\(.*\); check the URI$"):
        MlflowLogger("foo://bar", run_dir=tmp_path, experiment="runs", params={})
