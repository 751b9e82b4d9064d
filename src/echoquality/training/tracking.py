"""Optional MLflow tracking: a thin wrapper so training runs the same with or without it.

Default store: a local SQLite database plus artifact folder under ``./mlruns/`` (no server;
MLflow 3.17 refuses its plain-file store unless told otherwise). Browse it with
``mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db``. ``$MLFLOW_TRACKING_URI`` (or an
explicit URI) overrides it. If mlflow is not importable or the store fails, training goes on
with a ``NullTracker`` and a warning.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any


class NullTracker:
    """Does nothing; used with --no-mlflow, on non-zero ranks, or when mlflow is unavailable."""

    enabled = False
    run_id: str | None = None
    tracking_uri: str | None = None

    def log_params(self, params: dict[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        pass

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        pass

    def set_tags(self, tags: dict[str, str]) -> None:
        pass

    def end(self, status: str = "FINISHED") -> None:
        pass


def default_tracking_uri(root: Path | None = None) -> str:
    """``$MLFLOW_TRACKING_URI`` or ``sqlite:///<cwd>/mlruns/mlflow.db``."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    root = (root or Path.cwd() / "mlruns").resolve()
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}"


class MlflowTracker:
    """One MLflow run. Artifacts of a new experiment on the default store go to ``mlruns/artifacts``."""

    enabled = True

    def __init__(
        self,
        experiment: str,
        run_name: str | None,
        tracking_uri: str | None = None,
        run_id: str | None = None,
    ) -> None:
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        import mlflow

        self._mlflow = mlflow
        self.tracking_uri = tracking_uri or default_tracking_uri()
        mlflow.set_tracking_uri(self.tracking_uri)
        exp = mlflow.get_experiment_by_name(experiment)
        if exp is None:
            artifact_location = None
            if self.tracking_uri.startswith("sqlite:///"):
                db = Path(self.tracking_uri[len("sqlite:///") :])
                artifact_location = (db.parent / "artifacts").resolve().as_uri()
            experiment_id = mlflow.create_experiment(experiment, artifact_location=artifact_location)
        else:
            experiment_id = exp.experiment_id
        if run_id:  # continue the run of an interrupted training (--resume)
            self._run = mlflow.start_run(run_id=run_id)
        else:
            self._run = mlflow.start_run(run_name=run_name, experiment_id=experiment_id)
        self.run_id = self._run.info.run_id

    def log_params(self, params: dict[str, Any]) -> None:
        clean = {k: (str(v)[:500] if v is not None else "None") for k, v in params.items()}
        self._mlflow.log_params(clean)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self._mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self._mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def set_tags(self, tags: dict[str, str]) -> None:
        self._mlflow.set_tags(tags)

    def end(self, status: str = "FINISHED") -> None:
        self._mlflow.end_run(status=status)


def make_tracker(
    enabled: bool,
    experiment: str,
    run_name: str | None = None,
    tracking_uri: str | None = None,
    run_id: str | None = None,
) -> MlflowTracker | NullTracker:
    """An MLflow tracker when enabled and usable, else a NullTracker (with a warning if it failed)."""
    if not enabled:
        return NullTracker()
    try:
        return MlflowTracker(experiment, run_name, tracking_uri, run_id)
    except ImportError:
        warnings.warn("mlflow is not installed: training without experiment tracking", stacklevel=2)
    except Exception as exc:  # a broken store must not stop training
        warnings.warn(f"MLflow tracking disabled ({type(exc).__name__}: {exc})", stacklevel=2)
    return NullTracker()
