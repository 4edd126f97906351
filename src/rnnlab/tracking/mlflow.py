"""MLflow beside TensorBoard: `logger=mlflow` or `logger=tensorboard_mlflow`.

Lightning's `MLFlowLogger` does the logging (every metric a task logs reaches it, as it reaches
TensorBoard); this module makes one for a run, on a database: the tracking store is SQLite
(`sqlite:///<output_root>/mlflow.db` by default; any tracking URI can be set), never MLflow's deprecated
file store. It also logs what Lightning's logger leaves out: the flattened config as params, the run's
tags, the final metrics.json values and the best checkpoint's path; and a resumed run goes on in the
same MLflow run (its id is kept in metrics.json as `mlflow_run_id`).

MLflow is an optional extra (`pip install -e ".[track]"`): without it `logger=mlflow` says so in one line.
"""

from __future__ import annotations

import importlib.util
import math
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from rnnlab.errors import UserError

INSTALL = 'pip install -e ".[track]"'
PARAM_LIMIT = 250  # characters of a param value Lightning's MLFlowLogger keeps


def check_installed() -> None:
    if importlib.util.find_spec("mlflow") is None:
        raise UserError(
            f"logger=mlflow needs MLflow, which is not installed: {INSTALL} (or pip install mlflow)"
        )


def check_tracking_uri(uri: str) -> None:
    """Refuse the file store, make a SQLite database's folder, and try an HTTP server once, briefly."""
    scheme = uri.split(":", 1)[0] if ":" in uri else ""
    if scheme in ("", "file") or len(scheme) == 1:  # a path, file:..., or C:\...
        raise UserError(
            f"logger.mlflow.tracking_uri={uri} is MLflow's file store, which MLflow deprecates; "
            "use a database, e.g. sqlite:///outputs/mlflow.db (the default), or a server's http:// URI"
        )
    if scheme == "sqlite":
        database = uri.removeprefix("sqlite:///")
        if database and database != ":memory:":
            try:
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise UserError(
                    f"logger.mlflow.tracking_uri={uri}: cannot make its folder ({error})"
                ) from None
    elif scheme in ("http", "https"):
        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5).close()
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise UserError(
                f"logger.mlflow.tracking_uri={uri} cannot be reached ({reason}); start the server "
                "(mlflow server --backend-store-uri sqlite:///mlflow.db) or use a sqlite:/// URI"
            ) from None


def run_name_of(run_dir: str, output_root: str) -> str:
    """The run folder relative to the output root: `2026-12-02/03-00-00`, `multirun/.../model=gru,seed=1`."""
    path, root = Path(run_dir).resolve(), Path(output_root).resolve()
    return str(path.relative_to(root)) if path.is_relative_to(root) else path.name


def create_mlflow_logger(
    tracking_uri: str,
    experiment_name: str = "rnnlab",
    run_dir: str = ".",
    output_root: str = "outputs",
    run_name: str | None = None,
    run_id: str | None = None,
    tags: list[str] | None = None,
    artifact_location: str | None = None,
    **options: Any,
) -> Any:
    """Lightning's `MLFlowLogger` on `tracking_uri`, its run created (or, given `run_id`, reopened) now, so
    that a store that cannot be used fails before training, in one line. `options` are MLFlowLogger's
    other arguments (`log_model`, `prefix`, ...), passed as given."""
    check_installed()
    check_tracking_uri(tracking_uri)
    from lightning.pytorch.loggers import MLFlowLogger
    from mlflow.exceptions import MlflowException

    if artifact_location is None and tracking_uri.startswith("sqlite:"):
        artifact_location = Path(output_root).resolve().joinpath("mlflow-artifacts").as_uri()
    logger = MLFlowLogger(
        experiment_name=experiment_name,
        run_name=run_name or run_name_of(run_dir, output_root),
        tracking_uri=tracking_uri,
        tags={str(tag): "true" for tag in tags or []} or None,
        artifact_location=artifact_location,
        run_id=run_id,
        **options,
    )
    try:
        client = logger.experiment
        if run_id is not None:
            client.update_run(run_id, status="RUNNING")
        client.set_tag(logger.run_id, "run_dir", str(Path(run_dir).resolve()))
    except MlflowException as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(
            f"logger.mlflow.tracking_uri={tracking_uri}: MLflow cannot use it ({message})"
        ) from None
    return logger


def is_mlflow(logger: Any) -> bool:
    return type(logger).__name__ == "MLFlowLogger"


def mlflow_loggers(trainer: Any) -> list[Any]:
    return [logger for logger in trainer.loggers if is_mlflow(logger)]


def flat_config(cfg: DictConfig) -> dict[str, Any]:
    """The composed config as `group.key` params (`hydra` left out), each value as text."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(f"{prefix}.{key}" if prefix else str(key), value)
        else:
            flat[prefix] = "null" if node is None else str(node)[:PARAM_LIMIT]

    container = OmegaConf.to_container(cfg, resolve=True)
    container.pop("hydra", None)
    walk("", container)
    return flat


def params_for(logger: Any, cfg: DictConfig, hparams: dict[str, Any]) -> dict[str, Any]:
    """What `log_hyperparams` gets: for MLflow the whole config (plus what the run is: parameter count,
    code versions; not the tags, which are MLflow tags); for the others the curated `hparams`."""
    if not is_mlflow(logger):
        return hparams
    identity = {key: value for key, value in hparams.items() if "/" not in key and key != "tags"}
    return {**flat_config(cfg), **identity}


def continue_mlflow_run(cfg: DictConfig, previous: dict[str, Any] | None) -> None:
    """A resumed run logs into the MLflow run it started (its id from metrics.json)."""
    run_id = (previous or {}).get("mlflow_run_id")
    for logger in (cfg.get("logger") or {}).values():
        if run_id and logger.get("_target_", "").endswith("create_mlflow_logger"):
            with open_dict(logger):
                logger.run_id = run_id


def mlflow_record(cfg: DictConfig, trainer: Any) -> dict[str, Any]:
    """metrics.json's `mlflow_run_id` and `mlflow_tracking_uri`, for a run that logs to MLflow."""
    uris = [
        logger.tracking_uri
        for logger in (cfg.get("logger") or {}).values()
        if logger.get("_target_", "").endswith("create_mlflow_logger")
    ]
    for logger, uri in zip(mlflow_loggers(trainer), uris, strict=False):
        return {"mlflow_run_id": logger.run_id, "mlflow_tracking_uri": uri}
    return {}


def log_final_to_mlflow(trainer: Any, metrics: dict[str, Any]) -> None:
    """metrics.json's numbers as `final/<name>` metrics; status, best checkpoint, early stop as tags."""
    for logger in mlflow_loggers(trainer):
        numbers = {
            f"final/{key}": float(value)
            for key, value in metrics.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        }
        logger.log_metrics(numbers, step=trainer.global_step)
        client, run_id = logger.experiment, logger.run_id
        client.set_tag(run_id, "status", str(metrics.get("status")))
        if metrics.get("best_checkpoint"):
            client.set_tag(run_id, "best_checkpoint", metrics["best_checkpoint"])
        if "early_stopped" in metrics:
            stop = metrics["early_stopped"]
            client.set_tag(run_id, "early_stopped", f"after epoch {stop['epoch']}: {stop['reason']}")
