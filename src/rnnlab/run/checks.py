"""Pre-flight checks: settings, and model / data / task pairs that cannot work, refused in one line
before anything is built or downloaded."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import get_class, get_object
from omegaconf import DictConfig

from rnnlab.contract import task_fits
from rnnlab.errors import UserError
from rnnlab.readback import Unreadable, checkpoint_problem

log = logging.getLogger(__name__)

CHECKED_GROUPS = ("data", "model", "task", "optimizer", "scheduler")


def choice(cfg: DictConfig, group: str) -> str:
    """How the user named a group's config (`model=lstm`), for messages; the class name without Hydra."""
    if HydraConfig.initialized():
        name = HydraConfig.get().runtime.choices.get(group)
        if name:
            return str(name)
    return str(cfg[group].get("_target_", "?")).rsplit(".", 1)[-1]


def options_fitting(group: str, fits: Callable[[type], bool]) -> list[str]:
    """The configs of `group` whose `_target_` class `fits`, by name (empty without Hydra's config path)."""
    from hydra import compose

    hydra = GlobalHydra.instance()
    if not hydra.is_initialized():
        return []
    names = [name for name in hydra.config_loader().get_group_options(group) if not name.startswith("_")]
    # A group's config composes under the group's name (`model: {...}`).
    return [name for name in sorted(names) if fits(get_class(compose(f"{group}/{name}")[group]._target_))]


def accepted_arguments(target: Any) -> set[str] | None:
    """The keyword arguments a function, or a class along its chain of `**kwargs` constructors,
    takes (None: any)."""
    if isinstance(target, type):
        functions = [klass.__init__ for klass in target.__mro__ if "__init__" in vars(klass)]
    else:
        functions = [target]
    accepted: set[str] = set()
    for function in functions:
        parameters = inspect.signature(function).parameters.values()
        accepted |= {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            return accepted - {"self"}
    return None


def _configured_objects(cfg: DictConfig) -> list[tuple[str, str, DictConfig]]:
    """(how to name it, its config key, its settings) of everything a run instantiates from the config."""
    objects = [
        (f"{group}={choice(cfg, group)}", group, cfg[group])
        for group in (*CHECKED_GROUPS, "trainer")
        if cfg.get(group) and "_target_" in cfg[group]
    ]
    for group in ("callbacks", "logger"):
        for name, settings in (cfg.get(group) or {}).items():
            if settings and "_target_" in settings:
                objects.append((f"{group}.{name}", f"{group}.{name}", settings))
    return objects


# Settings rnnlab reads itself before it instantiates their object (`rnnlab.run.build`).
RNNLAB_SETTINGS = {("trainer", "matmul_precision"), ("scheduler", "warmup_steps")}


def check_arguments(cfg: DictConfig) -> None:
    """Every setting must be one its class takes (a key meant for other data, a typo)."""
    for label, key, settings in _configured_objects(cfg):
        accepted = accepted_arguments(get_object(settings._target_))
        if accepted is None:
            continue
        unknown = sorted(
            k
            for k in settings
            if not k.startswith("_") and k not in accepted and (key, k) not in RNNLAB_SETTINGS
        )
        if unknown:
            raise UserError(
                f"{label} does not take {', '.join(unknown)} (set on the command line, or by an "
                f"experiment or debug config meant for something else); remove it with ~{key}.{unknown[0]}"
            )


def in_multirun() -> bool:
    """Whether this run is a job of a `-m` sweep (or of a search)."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def check_settings(cfg: DictConfig) -> None:
    """Settings that would only fail deep inside Lightning or torch (`build` checks the rest)."""
    lr = cfg.optimizer.get("lr")
    if lr is not None and lr <= 0:
        raise UserError(f"optimizer.lr={lr} must be positive")
    strategy = str(cfg.trainer.get("strategy", ""))
    relaunches_script = strategy.startswith("ddp") and not strategy.startswith("ddp_spawn")
    if relaunches_script and in_multirun():
        raise UserError(
            "trainer=ddp cannot run inside a -m sweep (each process would re-run the whole sweep); "
            "use trainer=ddp_spawn, or a launcher such as hydra/launcher=submitit_slurm"
        )
    epochs = cfg.trainer.get("max_epochs")
    if epochs is not None and epochs < 1 and epochs != -1:
        raise UserError(f"trainer.max_epochs={epochs} must be at least 1 (or -1 with trainer.max_steps)")


# The CPU features that run bfloat16 arithmetic natively (`torch.cpu.get_capabilities()` names):
# x86's AVX-512 BF16 and AMX, Arm's BF16 and SVE BF16. Without one, oneDNN converts in software.
NATIVE_BF16 = ("avx512_bf16", "amx_bf16", "bf16", "sve_bf16")


def cpu_has_native_bf16() -> bool | None:
    """Whether this CPU computes in bfloat16 natively; None where torch cannot say (before 2.13)."""
    import torch

    capabilities = getattr(torch.cpu, "get_capabilities", None)
    return None if capabilities is None else any(capabilities().get(name) for name in NATIVE_BF16)


def warn_if_bf16_is_emulated(trainer: Any) -> None:
    """bf16 autocast is a CPU speed-up only on a CPU with bf16 instructions (1.6x on an AVX-512 BF16
    machine, docs/performance-cpu.md); elsewhere bf16 is converted, not computed natively, and likely
    slower than float32, so say so once."""
    precision = str(trainer.precision)
    on_cpu = trainer.strategy.root_device.type == "cpu"
    if precision.startswith("bf16") and on_cpu and cpu_has_native_bf16() is False:
        log.warning(
            "trainer.precision=%s on a CPU without bf16 instructions (AVX-512 BF16, AMX or Arm BF16) "
            "is likely slower than float32; set trainer.precision=32-true",
            precision,
        )


def check_model_fits_data(cfg: DictConfig) -> None:
    """A network that cannot read the data's batches (`accepts` against the data's `input_kind`)."""
    accepts = getattr(get_class(cfg.model._target_), "accepts", None)
    gives = getattr(get_class(cfg.data._target_), "input_kind", None)
    if accepts is None or gives is None or gives in accepts:
        return
    model, data = choice(cfg, "model"), choice(cfg, "data")
    takes = " or ".join(kind.value for kind in sorted(accepts))
    fitting = options_fitting("model", lambda cls: gives in getattr(cls, "accepts", ()))
    raise UserError(
        f"model={model} takes {takes}, but data={data} gives {gives.value}"
        + (f"; with data={data} use model={'|'.join(fitting)}" if fitting else "")
    )


def check_task_fits_data(cfg: DictConfig, datamodule: Any) -> None:
    """A task that does not take what the datamodule hands over (`rnnlab.contract`)."""
    hands_over = datamodule.hands_over
    if task_fits(get_class(cfg.task._target_).takes, hands_over):
        return
    task, data = choice(cfg, "task"), choice(cfg, "data")
    fitting = options_fitting("task", lambda cls: task_fits(getattr(cls, "takes", None), hands_over))
    raise UserError(
        f"task={task} does not fit data={data} (the data hands over {hands_over.__name__})"
        + (f"; with data={data} use task={'|'.join(fitting)}, or leave task unset" if fitting else "")
    )


def resolve_checkpoint(cfg: DictConfig) -> str | None:
    """`ckpt_path`: a checkpoint to start a new run from (`resume=` goes on in the checkpoint's own run)."""
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path is None:
        return None
    if not Path(ckpt_path).is_file():
        raise UserError(f"ckpt_path={ckpt_path} is not a file; give the path of a .ckpt to start from")
    return ckpt_path


def check_checkpoint_fits(ckpt_path: str, task: Any) -> None:
    """A checkpoint written by another task, or for another network, is refused before Lightning
    fails on its weights with a long traceback."""
    from rnnlab.checkpoint import rnnlab_info

    try:
        info = rnnlab_info(ckpt_path)
    except Exception as error:  # cut short, overwritten, not a checkpoint: one line, not a traceback
        raise Unreadable(
            ckpt_path, f"not a readable checkpoint ({checkpoint_problem(ckpt_path, error)})"
        ) from None
    if info.get("task", task.kind) != task.kind:
        raise UserError(
            f"{ckpt_path} was written by a {info['task']} task, but this run trains a {task.kind} task; "
            "give a checkpoint of this kind of run"
        )
    saved, built = info.get("network"), task.network_config
    if saved is None or built is None or saved == built:
        return
    key = next(k for k in sorted(saved.keys() | built.keys()) if saved.get(k) != built.get(k))
    raise UserError(
        f"{ckpt_path} holds another network ({key}={saved.get(key)} there, {built.get(key)} here); "
        "give the settings it was trained with, or a checkpoint of this network"
    )
