"""Where the project's files are, for tests that run its scripts or compose its configs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"
