"""Where the project's files are, and which optional Hydra plugins are installed, for tests that run
its scripts or compose its configs."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"


def plugin_installed(module: str) -> bool:
    """Whether a Hydra plugin is importable; without any plugin there is no `hydra_plugins` package at all."""
    return importlib.util.find_spec("hydra_plugins") is not None and (
        importlib.util.find_spec(f"hydra_plugins.{module}") is not None
    )


def module_installed(module: str) -> bool:
    """Whether an optional dependency (e.g. optuna, of the sweep extra) is importable."""
    return importlib.util.find_spec(module) is not None
