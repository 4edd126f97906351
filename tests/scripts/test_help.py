"""Every script answers -h and --help with its usage and options, exit 0, and writes nothing."""

from __future__ import annotations

import pytest
import yaml

from tests.project import CONF_DIR, ROOT, call

SCRIPTS = sorted(path.name for path in (ROOT / "scripts").glob("*.py"))


@pytest.mark.parametrize("flag", ["-h", "--help"])
@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_answers_help_with_its_usage_and_writes_nothing(script, flag, workdir, capfd):
    done = call(script, flag, cwd=workdir, capfd=capfd)
    assert done.returncode == 0 and done.stderr == "", done.why()
    assert done.stdout.startswith("usage: ") and script in done.stdout.splitlines()[0]
    assert "-h, --help" in done.stdout or "--help,-h" in done.stdout
    assert not list(workdir.iterdir())  # no run folder claimed, no output written


def test_train_help_lists_every_config_group_and_top_level_setting(workdir, capfd):
    done = call("train.py", "--help", cwd=workdir, capfd=capfd)
    listed = {line.split(":", 1)[0] for line in done.stdout.splitlines() if ": " in line}
    groups = {path.name for path in CONF_DIR.iterdir() if path.is_dir() and path.name != "hydra"}
    assert groups <= listed, groups - listed
    model_line = next(line for line in done.stdout.splitlines() if line.startswith("model: "))
    assert "lstm" in model_line and "gru" in model_line
    top_level = [key for key in yaml.safe_load((CONF_DIR / "train.yaml").read_text()) if key != "defaults"]
    settings = next(line for line in done.stdout.splitlines() if line.startswith("Settings"))
    assert all(key in settings for key in top_level), (top_level, settings)
    assert "--multirun,-m" in done.stdout and "--cfg,-c" in done.stdout  # Hydra's own flags


def test_a_mistyped_train_override_is_refused_by_hydra_in_a_few_lines_without_a_run_folder(workdir, capfd):
    done = call("train.py", "modle=gru", cwd=workdir, capfd=capfd)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "Could not override 'modle'" in done.stderr
    assert not list(workdir.iterdir())
