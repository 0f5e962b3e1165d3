"""MLflow logging of one run: its settings as params, every epoch's metrics, the final scores and
the run folder's files as artifacts.

Optional: MLflow comes with the ``mlflow`` extra (``mlflow-skinny``: the client, without the
server or torch). The client API is used rather than ``mlflow.start_run``: no global active run,
so many trainings in one process (a study, a search) each keep their own.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from resnetlab.errors import UserError, first_line
from resnetlab.extras import install_hint

# The resume state duplicates the weights with the optimizer's (and is only of use in place); the
# slim best.pt and everything else of the run folder go to MLflow.
_NOT_ARTIFACTS = ("last.pt",)
_ID_FILE = "mlflow_run.json"
_BATCH = 100  # MLflow takes at most 100 params per log_batch call


def _client(uri: str) -> Any:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise UserError(f"output.mlflow={uri} needs the mlflow extra: {install_hint('mlflow')} (or set "
                        "output.mlflow=null)") from None
    if uri.startswith("file:") or "://" not in uri:
        # MLflow 3 refuses a plain folder store unless asked for; the user asked for it by this URI.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return MlflowClient(tracking_uri=uri)


class MlflowLogger:
    """One MLflow run for one resnetlab run; a resumed run continues the MLflow run it started."""

    def __init__(self, uri: str, *, run_dir: Path, experiment: str, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        self.uri, self.run_dir = uri, Path(run_dir)
        self.run_id = self._previous_run_id()
        try:
            self._client = _client(uri)
            if self.run_id is not None:
                self._client.update_run(self.run_id, status="RUNNING")
                return
            found = self._client.get_experiment_by_name(experiment)
            experiment_id = found.experiment_id if found else self._client.create_experiment(experiment)
            self.run_id = self._client.create_run(experiment_id, run_name=self.run_dir.name).info.run_id
        except UserError:
            raise
        except Exception as exc:  # any unknown scheme, store or connection failure: say which URI  # noqa: BLE001
            raise UserError(f"output.mlflow={uri}: MLflow cannot open experiment '{experiment}' there "
                            f"({first_line(exc).strip()}); check the URI") from None
        items = [Param(k, "null" if v is None else str(v)) for k, v in params.items()]
        for start in range(0, len(items), _BATCH):
            self._client.log_batch(self.run_id, params=items[start:start + _BATCH])
        (self.run_dir / _ID_FILE).write_text(json.dumps({"uri": uri, "run_id": self.run_id}) + "\n")

    def _previous_run_id(self) -> str | None:
        try:
            saved = json.loads((self.run_dir / _ID_FILE).read_text())
        except (OSError, ValueError):
            return None
        return saved.get("run_id") if saved.get("uri") == self.uri else None

    def log_metrics(self, scalars: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, step) for k, v in scalars.items()]
        self._client.log_batch(self.run_id, metrics=metrics)

    def finish(self, scalars: Mapping[str, float], step: int) -> None:
        """The final scores, then the run folder's files; the MLflow run ends as finished."""
        self.log_metrics(scalars, step)
        for path in sorted(self.run_dir.rglob("*")):
            if path.is_file() and path.name not in _NOT_ARTIFACTS:
                parent = path.parent.relative_to(self.run_dir).as_posix()
                self._client.log_artifact(self.run_id, str(path), None if parent == "." else parent)
        self._client.set_terminated(self.run_id, status="FINISHED")
        self.run_id = None

    def close(self) -> None:
        """An unfinished run (stopped, failed) is marked KILLED; a resume sets it running again."""
        if self.run_id is not None:
            self._client.set_terminated(self.run_id, status="KILLED")
            self.run_id = None
