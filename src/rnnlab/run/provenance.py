"""What a run is: its tags, its size and the code it ran, so that a table row can be traced to its code.

Recorded in metrics.json and TensorBoard's HPARAMS tab (and MLflow's params). The git commit is the
checkout rnnlab is imported from, with a dirty flag for uncommitted changes to tracked files; an
installed package (no checkout) or a machine without git records None.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import rnnlab


def run_tags(cfg: Any) -> list[str]:
    """`tags=[baseline,ablation]` as plain strings (a single `tags=baseline` too)."""
    tags = cfg.get("tags") or []
    if isinstance(tags, str):
        tags = [tags]
    return [str(tag) for tag in tags]


def _git(checkout: Path, *args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", "-C", str(checkout), *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def git_state(package_dir: Path | None = None) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git checkout that holds the package, or (None, None) outside one."""
    package_dir = package_dir or Path(rnnlab.__file__).resolve().parent
    top = _git(package_dir, "rev-parse", "--show-toplevel")
    if top is None or not package_dir.is_relative_to(Path(top).resolve()):
        return None, None
    commit = _git(package_dir, "rev-parse", "HEAD")
    if commit is None:  # a repository without commits
        return None, None
    changes = _git(package_dir, "status", "--porcelain", "--untracked-files=no")
    return commit, None if changes is None else bool(changes)


def code_versions() -> dict[str, Any]:
    import lightning
    import torch

    commit, dirty = git_state()
    return {
        "rnnlab_version": rnnlab.__version__,
        "git_commit": commit,
        "git_dirty": dirty,
        "torch_version": torch.__version__,
        "lightning_version": lightning.__version__,
    }


def run_identity(cfg: Any, task: Any) -> dict[str, Any]:
    """metrics.json's tags, parameter count and code versions."""
    return {
        "tags": run_tags(cfg),
        "parameters": sum(p.numel() for p in task.parameters()),
        **code_versions(),
    }


def as_hyperparameters(identity: dict[str, Any]) -> dict[str, Any]:
    """The identity for TensorBoard's HPARAMS, which takes numbers, strings and booleans only."""
    flat = {key: value for key, value in identity.items() if key != "tags"}
    flat["tags"] = ",".join(identity.get("tags", []))
    return {key: "none" if value is None else value for key, value in flat.items()}
