"""`evaluate(cfg)`: score a trained checkpoint without training (`scripts/eval.py`).

The run's own composed config (`.hydra/config.yaml`) rebuilds its data and task, so a checkpoint is
scored on exactly the split and vocabulary it was trained with; the evaluation settings can change:
the split (test or val), the language models' mode (`stream`: the state carried through the split;
`windowed`: fresh-state windows, nanoGPT's protocol), the window or steps per batch, the streams per
batch (1: every token has all the text before it), or another text file (`data.path=FILE`, encoded
with the checkpoint's vocabulary). Results go to `eval.json` beside the checkpoint, one entry per
setting, so several evaluations of one checkpoint sit side by side.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from rnnlab.atomic import write_text_atomically
from rnnlab.checkpoint import read_checkpoint
from rnnlab.errors import UserError
from rnnlab.readback import Unreadable, read_json, set_aside

log = logging.getLogger(__name__)

SPLITS = ("test", "val")
MODES = ("stream", "windowed", "dynamic")


@dataclass
class EvalConfig:
    ckpt: str | None = field(
        default=None, metadata={"help": "a checkpoint; its run folder is the one above checkpoints/"}
    )
    run: str | None = field(
        default=None, metadata={"help": "a run folder (as a run prints it, 'run dir:'): its best checkpoint"}
    )
    split: str = field(default="test", metadata={"help": "the split scored: test or val"})
    mode: str | None = field(
        default=None,
        metadata={
            "help": "language models: stream (the state carried through the split), windowed (fresh-state "
            "windows, nanoGPT's protocol) or dynamic (the weights learn from each segment after scoring "
            "it, reported apart: docs/dynamic-evaluation.md); null: the run's own (data.eval_mode)"
        },
    )
    window: int | None = field(
        default=None,
        metadata={
            "help": "windowed: the window; stream: steps per batch; dynamic: the segment (default 20); "
            "null: the run's data.eval_num_steps"
        },
    )
    batch_size: int | None = field(
        default=None,
        metadata={
            "help": "streams or windows per batch (1: every token has all the text before it); "
            "null: the run's data.eval_batch_size (dynamic: 1)"
        },
    )
    path: str | None = field(
        default=None, metadata={"help": "another text file, scored with the checkpoint's vocabulary"}
    )
    device: str = field(default="cpu", metadata={"help": "the accelerator: cpu, gpu or auto"})
    lr: float | None = field(
        default=None,
        metadata={
            "help": "dynamic: the step size per segment (0: the static stream exactly); null: 0.1 (sgd)"
        },
    )
    decay: float | None = field(
        default=None,
        metadata={"help": "dynamic: the share of the way back to the trained weights per segment"},
    )
    rule: str | None = field(
        default=None,
        metadata={
            "help": "dynamic: sgd, or rms (steps scaled by each weight's gradient RMS on the training split)"
        },
    )
    eps: float | None = field(
        default=None, metadata={"help": "dynamic, rule=rms: added to the gradient RMS before dividing by it"}
    )
    stats_tokens: int | None = field(
        default=None, metadata={"help": "dynamic, rule=rms: training tokens the RMS is gathered over"}
    )


def best_checkpoint(run_dir: Path) -> Path:
    """The run's best checkpoint (as its metrics.json names it), else its newest best-*, else last.

    The named file is looked for in this folder's checkpoints/ first: metrics.json holds the path the
    run had, and in a copied run folder that path is the original's (scoring it would score, and write
    eval.json beside, another folder's checkpoint)."""
    try:
        named = read_json(run_dir / "metrics.json").get("best_checkpoint")
    except Unreadable:
        named = None
    folder = run_dir / "checkpoints"
    if isinstance(named, str) and named:
        for candidate in (folder / Path(named).name, Path(named)):
            if candidate.is_file():
                return candidate
    found = sorted(folder.glob("best-*.ckpt"), key=lambda p: p.stat().st_mtime) or [
        p for p in (folder / "last.ckpt", folder / "interrupted.ckpt") if p.is_file()
    ]
    if not found:
        raise UserError(
            f"run={run_dir} has no checkpoint (nothing in {folder}); train it first, or give ckpt="
        )
    return found[-1]


def locate(cfg: EvalConfig) -> tuple[Path, Path]:
    """(checkpoint, run folder) from ckpt= and/or run=."""
    if cfg.split not in SPLITS:
        raise UserError(f"split={cfg.split} is unknown; choose test or val")
    if cfg.mode is not None and cfg.mode not in MODES:
        raise UserError(f"mode={cfg.mode} is unknown; choose one of {', '.join(MODES)}")
    if cfg.ckpt is None and cfg.run is None:
        raise UserError("give ckpt=PATH (a checkpoint) or run=RUN_DIR (its best checkpoint)")
    run_dir = Path(cfg.run).expanduser().resolve() if cfg.run else None
    if run_dir is not None and not (run_dir / ".hydra" / "config.yaml").is_file():
        raise UserError(
            f"run={cfg.run} is not a run folder (no .hydra/config.yaml); give the 'run dir:' a run printed"
        )
    ckpt = Path(cfg.ckpt).expanduser().resolve() if cfg.ckpt else best_checkpoint(run_dir)
    if run_dir is None:
        run_dir = ckpt.parent.parent
        if not (run_dir / ".hydra" / "config.yaml").is_file():
            raise UserError(
                f"ckpt={cfg.ckpt}: its run folder ({run_dir}) has no .hydra/config.yaml to rebuild the data "
                "from; give run=RUN_DIR too"
            )
    return ckpt, run_dir


def evaluation_config(run_cfg: DictConfig, cfg: EvalConfig, run_dir: Path) -> DictConfig:
    """The run's config with the evaluation's settings: no logger, no callbacks, one device."""
    run_cfg = run_cfg.copy()
    with open_dict(run_cfg):
        run_cfg.logger = None
        run_cfg.callbacks = None
        run_cfg.trainer.update(
            accelerator=cfg.device,
            devices=1,
            num_nodes=1,
            strategy="auto",
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
        )
        run_cfg.paths.output_dir = str(run_dir)  # was Hydra's run folder; nothing is written there
        settings = {"eval_mode": cfg.mode, "eval_num_steps": cfg.window, "eval_batch_size": cfg.batch_size}
        if cfg.mode == "dynamic":  # the stream's batches, its own defaults (rnnlab.run.dynamic_eval)
            from rnnlab.run.dynamic_eval import stream_of_segments

            settings |= stream_of_segments(cfg.window, cfg.batch_size)
        given = {key: value for key, value in settings.items() if value is not None}
        if given and "eval_num_steps" not in run_cfg.data:
            raise UserError(
                "mode=, window= and batch_size= are for language models; this run's data has none"
            )
        run_cfg.data.update(given)
        if "sample_length" in run_cfg.task:
            run_cfg.task.sample_length = 0  # no greedy sample after the evaluation
    return run_cfg


def evaluate(cfg: EvalConfig) -> dict[str, Any]:
    """Score the checkpoint; return its eval.json entry (also written)."""
    import warnings

    import lightning as L

    from rnnlab.run.build import build
    from rnnlab.run.checks import check_checkpoint_fits
    from rnnlab.run.dynamic_eval import dynamic_settings, score_dynamically

    ckpt, run_dir = locate(cfg)
    dynamic = dynamic_settings(cfg)  # None unless mode=dynamic; a bad setting refused before any work
    read_checkpoint(ckpt)  # a damaged or foreign file: one line
    run_cfg = evaluation_config(OmegaConf.load(run_dir / ".hydra" / "config.yaml"), cfg, run_dir)
    L.seed_everything(run_cfg.get("seed", 0), verbose=False)
    datamodule, task, trainer = build(run_cfg)
    check_checkpoint_fits(str(ckpt), task)
    scored = {}
    if cfg.path is not None:
        if not hasattr(datamodule, "score_file"):
            raise UserError("path= scores a text file with a language model; this run is not one")
        scored = datamodule.score_file(cfg.path, "val" if cfg.split == "val" else "test")
    elif cfg.split == "test" and not datamodule.has_test_split:
        raise UserError(f"run={run_dir} has no test split (data.splits gives it 0); use split=val")
    how = {k: v for k, v in datamodule.summary().items() if k.startswith("eval_")}
    if dynamic is not None:
        stage = "val" if cfg.split == "val" else "test"
        metrics = score_dynamically(task, datamodule, ckpt, dynamic, stage, trainer.strategy.root_device)
        how = {
            "eval_mode": "dynamic",
            "eval_segment": run_cfg.data.eval_num_steps,
            "dynamic": dynamic.record(),
        }
    else:
        run = trainer.validate if cfg.split == "val" else trainer.test
        with warnings.catch_warnings():  # that the training callbacks are absent: on purpose
            warnings.filterwarnings("ignore", "Be aware that when using `ckpt_path`")
            (results,) = run(
                task, datamodule=datamodule, ckpt_path=str(ckpt), weights_only=True, verbose=False
            )
        metrics = {key.replace("/", "_"): float(value) for key, value in results.items() if "/" in key}
    entry = {
        "checkpoint": str(ckpt),
        "split": cfg.split if cfg.path is None else str(Path(cfg.path).resolve()),
        **how,
        "batch_size": run_cfg.data.get("eval_batch_size"),
        **scored,
        **metrics,
        "at": datetime.now().isoformat(timespec="seconds"),
    }
    record(ckpt.parent / "eval.json", entry)
    report(entry, task)
    return entry


def entry_key(entry: dict[str, Any]) -> str:
    """The entry's place in eval.json: what was scored and how (one entry per setting)."""
    parts = [Path(entry["checkpoint"]).name, entry["split"], entry.get("eval_mode", "")]
    parts += [f"window {entry['eval_window']}" if "eval_window" in entry else ""]
    parts += [f"segment {entry['eval_segment']}" if "eval_segment" in entry else ""]
    parts += [" ".join(f"{k} {v}" for k, v in entry["dynamic"].items()) if "dynamic" in entry else ""]
    parts += [f"batch {entry['batch_size']}" if entry.get("batch_size") else ""]
    return " | ".join(part for part in parts if part)


def record(path: Path, entry: dict[str, Any]) -> None:
    """Add (or replace) the entry in eval.json, atomically; an unreadable eval.json is set aside."""
    try:
        entries = read_json(path) if path.is_file() else {}
    except Unreadable as error:
        log.warning("%s; set aside as %s", error, set_aside(path).name)
        entries = {}
    entries[entry_key(entry)] = entry
    write_text_atomically(path, json.dumps(entries, indent=2) + "\n")


def report(entry: dict[str, Any], task: Any) -> None:
    stage = "val" if entry["split"] == "val" else "test"
    shown = " | ".join(
        f"{stage} {key.split('_', 1)[1]} {value:.4g}"
        for key, value in entry.items()
        if key.startswith(f"{stage}_") and isinstance(value, float) and math.isfinite(value)
    )
    how = entry.get("eval_mode", "")
    if "eval_window" in entry:
        how += f", windows of {entry['eval_window']}"
    if "eval_segment" in entry:  # dynamic: its settings beside its numbers, never a static-looking line
        how += f", segments of {entry['eval_segment']}, " + ", ".join(
            f"{k} {v}" for k, v in entry["dynamic"].items()
        )
    if entry.get("batch_size"):
        how += f", {entry['batch_size']} per batch"
    unknown = (
        f" | {entry['unknown_tokens']:,} unknown symbols read as <unk>" if entry.get("unknown_tokens") else ""
    )
    log.info("eval: %s | %s%s | %s", shown, how.strip(", ") or stage, unknown, Path(entry["checkpoint"]).name)
    log.info("written: %s", Path(entry["checkpoint"]).parent / "eval.json")
