"""`train(cfg)`: one run from a composed config: build, fit, test with the best checkpoint, report.

Everything the run writes goes under `cfg.paths.output_dir` (Hydra's run directory): the composed
config and log (Hydra), TensorBoard events, checkpoints, and `metrics.json`, which is written
whether the run completes or fails.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import get_class, instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from rnnlab.contract import MODELS_FOR
from rnnlab.errors import UserError

log = logging.getLogger(__name__)

# `import lightning` gives the "lightning" logger a console handler of its own, on top of the root
# handlers Hydra sets up (console and the run's log file): without this every line prints twice.
logging.getLogger("lightning").handlers.clear()
# ...and advertises a cloud service on every run.
logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
    lambda record: not str(record.msg).startswith("💡 Tip")
)
# Batches are windows of an in-memory tensor, so loader workers would only add start-up cost.
warnings.filterwarnings("ignore", ".*does not have many workers.*")
# Small sets have fewer batches per epoch than the logging interval; the steps are logged all the same.
warnings.filterwarnings("ignore", ".*smaller than the logging interval.*")
# Raised from inside Lightning 2.6 on torch >= 2.10; nothing a user can act on.
warnings.filterwarnings("ignore", ".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*")


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write by rename, so a reader never sees half a file."""
    temp = path.with_suffix(".json.tmp")
    temp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(temp, path)


def run_hyperparameters(cfg: DictConfig) -> dict[str, Any]:
    """The choices that define a run, flattened for TensorBoard's HPARAMS tab."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    flat = {"seed": cfg.seed, "max_epochs": cfg.trainer.get("max_epochs")}
    for group in ("model", "data", "optimizer", "scheduler", "task"):
        for key, value in (resolved.get(group) or {}).items():
            if key in ("_target_", "_partial_", "data_dir", "url", "sha1"):
                continue
            flat[f"{group}/{key}"] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return flat


def create(config: Any, **kwargs: Any) -> Any:
    """Hydra's `instantiate`, but what the user can fix reaches them as one line: a `UserError`
    raised by the constructor, or a setting the class does not take (e.g. a key meant for other data)."""
    try:
        return instantiate(config, **kwargs)
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, UserError):
            raise cause from None
        if isinstance(cause, TypeError) and "unexpected keyword argument" in str(cause):
            target = str(config.get("_target_", "?")).rsplit(".", 1)[-1]
            problem = str(cause).split(" ", 1)[-1]  # "got an unexpected keyword argument 'x'"
            raise UserError(
                f"{target} {problem} (set on the command line, or by an experiment or debug config "
                "meant for other data)"
            ) from None
        raise


def check_settings(cfg: DictConfig) -> None:
    """Settings that would only fail deep inside Lightning or torch, refused up front in one line."""
    lr = cfg.optimizer.get("lr")
    if lr is not None and lr <= 0:
        raise UserError(f"optimizer.lr={lr} must be positive")
    strategy = str(cfg.trainer.get("strategy", ""))
    relaunches_script = strategy.startswith("ddp") and not strategy.startswith("ddp_spawn")
    if relaunches_script and HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        raise UserError(
            "trainer=ddp cannot run inside a -m sweep (each process would re-run the whole sweep); "
            "use trainer=ddp_spawn, or a launcher such as hydra/launcher=submitit_slurm"
        )
    for group in ("optimizer", "scheduler"):
        settings = cfg.get(group)
        if settings is None:
            continue
        arguments = {k: v for k, v in settings.items() if not k.startswith("_")}
        # The optimiser is built inside Lightning's fit, where a mistake would surface as a traceback.
        try:
            inspect.signature(get_class(settings._target_)).bind_partial(None, **arguments)
        except TypeError as error:
            raise UserError(
                f"{group}={choice(cfg, group)} does not take these settings ({error}); "
                f"remove one with ~{group}.NAME (an experiment may have set it for another {group})"
            ) from None
    epochs = cfg.trainer.get("max_epochs")
    if epochs is not None and epochs < 1 and epochs != -1:
        raise UserError(f"trainer.max_epochs={epochs} must be at least 1 (or -1 with trainer.max_steps)")


def resolve_checkpoint(cfg: DictConfig) -> str | None:
    """`ckpt_path`: a file, or `last`: the newest last/interrupted checkpoint of earlier runs."""
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path is None:
        return None
    if ckpt_path == "last":
        root = Path(cfg.paths.output_root)
        run_dir = Path(cfg.paths.output_dir).resolve()
        candidates = [
            path
            for name in ("last.ckpt", "interrupted.ckpt")
            for path in root.glob(f"**/checkpoints/{name}")
            if run_dir not in path.resolve().parents
        ]
        if not candidates:
            raise UserError(f"ckpt_path=last: no checkpoints/last.ckpt under {root}; give a checkpoint path")
        newest = max(candidates, key=lambda path: path.stat().st_mtime)
        log.info("ckpt_path=last: resuming from %s", newest)
        return str(newest)
    if not Path(ckpt_path).is_file():
        raise UserError(f"ckpt_path={ckpt_path} is not a file; give the path of a .ckpt to resume from")
    return ckpt_path


def choice(cfg: DictConfig, group: str) -> str:
    """How the user named a group's config (`model=lstm`), for messages; the class name without Hydra."""
    if HydraConfig.initialized():
        name = HydraConfig.get().runtime.choices.get(group)
        if name:
            return str(name)
    return str(cfg[group].get("_target_", "?")).rsplit(".", 1)[-1]


def check_model_fits_data(cfg: DictConfig) -> None:
    """Refuse, before anything is built or downloaded, a network that cannot read the data's batches."""
    accepts = getattr(get_class(cfg.model._target_), "accepts", None)
    gives = getattr(get_class(cfg.data._target_), "input_kind", None)
    if accepts is None or gives is None or gives in accepts:
        return
    model, data = choice(cfg, "model"), choice(cfg, "data")
    takes = " or ".join(kind.value for kind in sorted(accepts))
    raise UserError(
        f"model={model} takes {takes}, but data={data} gives {gives.value}; "
        f"with data={data} use model={'|'.join(MODELS_FOR[gives])}"
    )


def create_task(cfg: DictConfig, network: Any, network_config: dict, data_inputs: dict) -> L.LightningModule:
    """The task, given the network and what the data tells it (class names, a vocabulary...)."""
    # Built through a partial so that Hydra leaves the objects and the plain network config alone.
    factory = create(cfg.task, _partial_=True)
    try:
        return factory(
            network=network,
            optimizer=instantiate(cfg.optimizer),
            scheduler=instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
            network_config=network_config,
            **data_inputs,
        )
    except TypeError as error:
        task, data = choice(cfg, "task"), choice(cfg, "data")
        raise UserError(
            f"task={task} does not fit data={data} ({error}); leave task unset: data={data} picks its task"
        ) from None


def create_callbacks(cfg: DictConfig, task: Any) -> list[L.Callback]:
    """The configured callbacks; a checkpoint callback without a `monitor` follows the task's metric."""
    callbacks = []
    for callback in (cfg.get("callbacks") or {}).values():
        if callback.get("_target_", "").endswith("ModelCheckpoint") and callback.get("monitor") is None:
            name = task.metric
            callback = OmegaConf.merge(
                callback,
                {
                    "monitor": f"val/{name}",
                    "mode": task.metric_mode,
                    "filename": callback.get("filename")
                    or f"best-epoch{{epoch:03d}}-val_{name}{{val/{name}:.4g}}",
                },
            )
        callbacks.append(create(callback))
    return callbacks


def build(cfg: DictConfig) -> tuple[L.LightningDataModule, L.LightningModule, L.Trainer]:
    """Instantiate the datamodule, then the network sized by its data, the task and the trainer."""
    check_model_fits_data(cfg)
    datamodule = create(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    sizes = datamodule.network_sizes()
    network = create(cfg.model, **sizes)
    # What a checkpoint needs to rebuild the network without the data.
    network_config = {**OmegaConf.to_container(cfg.model, resolve=True), **sizes}
    task = create_task(cfg, network, network_config, datamodule.task_inputs())
    loggers = [create(logger) for logger in (cfg.get("logger") or {}).values()]
    trainer = create(cfg.trainer, callbacks=create_callbacks(cfg, task), logger=loggers or False)
    return datamodule, task, trainer


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def hparam_metrics(task: Any) -> tuple[str, ...]:
    """The metrics.json entries shown in TensorBoard's HPARAMS tab (as hp/NAME)."""
    return (f"val_{task.metric}", f"test_{task.metric}", f"{task.throughput_unit}_per_s")


def train(cfg: DictConfig) -> float:
    """Run one experiment; return the best value of the monitored metric (what sweepers optimise)."""
    run_dir = Path(cfg.paths.output_dir)
    started = time.perf_counter()
    metrics: dict[str, Any] = {"status": "running", "run_dir": str(run_dir)}
    try:
        check_settings(cfg)
        ckpt_path = resolve_checkpoint(cfg)
        L.seed_everything(cfg.seed, workers=True)
        datamodule, task, trainer = build(cfg)
        hparams = run_hyperparameters(cfg)
        reported = hparam_metrics(task)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                # Placeholders register the metrics in the HPARAMS tab; the real values follow at the end.
                logger.log_hyperparams(hparams, {f"hp/{name}": math.nan for name in reported})
            else:
                logger.log_hyperparams(hparams)

        trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        checkpoint = trainer.checkpoint_callback
        best_path = checkpoint.best_model_path if isinstance(checkpoint, ModelCheckpoint) else ""
        fitted = {key: _float(value) for key, value in trainer.callback_metrics.items()}
        if cfg.get("test", True):
            trainer.test(
                task, datamodule=datamodule, ckpt_path=best_path or None, weights_only=True, verbose=False
            )
        tested = {
            key.replace("/", "_"): _float(value)
            for key, value in trainer.callback_metrics.items()
            if key.startswith("test/")
        }
        if isinstance(checkpoint, ModelCheckpoint) and checkpoint.monitor:
            monitor, mode = checkpoint.monitor, checkpoint.mode
        else:
            monitor, mode = f"val/{task.metric}", task.metric_mode
        name = task.metric
        metrics.update(
            status="completed",
            monitor=monitor,
            monitor_mode=mode,
            **{f"val_{name}": fitted.get(f"val/{name}"), f"train_{name}": fitted.get(f"train/{name}")},
            **{f"test_{name}": None, **tested},
            **{f"{task.throughput_unit}_per_s": statistics.median(task.rates) if task.rates else None},
            epochs=trainer.current_epoch,
            steps=trainer.global_step,
            best_checkpoint=best_path or None,
        )
        line = task.line()  # the course's linear models: the learned w and b (of the tested weights)
        if line is not None:
            metrics.update(weight=line[0], bias=line[1])
        # The monitored metric is reported at its best epoch (the checkpoint tested above), not its last.
        if best_path and checkpoint.best_model_score is not None:
            metrics[monitor.replace("/", "_")] = _float(checkpoint.best_model_score)
    except BaseException as error:
        metrics.update(
            status="interrupted" if isinstance(error, KeyboardInterrupt | SystemExit) else "failed"
        )
        metrics["error"] = f"{type(error).__name__}: {error}"
        raise
    finally:
        metrics["wall_time_s"] = round(time.perf_counter() - started, 2)
        if run_dir.is_dir() and rank_zero_only.rank == 0:  # one file per run, however many processes
            write_json(run_dir / "metrics.json", metrics)

    for logger in trainer.loggers:
        logger.log_metrics(
            {f"hp/{key}": metrics[key] for key in reported if metrics.get(key) is not None},
            step=trainer.global_step,
        )
        logger.save()
    if rank_zero_only.rank == 0:
        _print_summary(metrics, task)
    best = metrics.get(metrics["monitor"].replace("/", "_"))
    return best if best is not None else math.nan


def _print_summary(metrics: dict[str, Any], task: Any) -> None:
    def fmt(key: str, spec: str = ".4g") -> str:
        value = metrics.get(key)
        return "-" if value is None else format(value, spec)

    name, unit = task.metric, task.throughput_unit
    tests = [
        key for key in metrics if key.startswith("test_") and key.count("_") == 1 and key != f"test_{name}"
    ]
    log.info(
        "done: best val %s %s | test %s %s%s | train %s %s | %s %s/s | %d epochs in %.0f s",
        name,
        fmt(f"val_{name}"),
        name,
        fmt(f"test_{name}"),
        "".join(f" | test {key[5:]} {fmt(key)}" for key in tests),
        name,
        fmt(f"train_{name}"),
        fmt(f"{unit}_per_s", ",.0f"),
        unit,
        metrics["epochs"],
        metrics["wall_time_s"],
    )
    log.info("run dir: %s", metrics["run_dir"])
    log.info("look at it: tensorboard --logdir %s", metrics["run_dir"])
