"""What a run records about its code: the git commit and dirty flag of the checkout, and nothing (no
crash) outside one or without git."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rnnlab.run.provenance import as_hyperparameters, git_state, run_tags

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(folder: Path, *args: str) -> str:
    command = ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@t", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


@needs_git
def test_a_checkout_gives_its_commit_and_whether_tracked_files_changed(tmp_path):
    package = tmp_path / "src" / "rnnlab"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("x = 1\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "first")
    head = git(tmp_path, "rev-parse", "HEAD")
    (package / "scratch.txt").write_text("untracked files do not count\n")
    assert git_state(package) == (head, False)
    (package / "__init__.py").write_text("x = 2\n")
    assert git_state(package) == (head, True)


def test_outside_a_checkout_or_without_git_it_is_none(tmp_path, monkeypatch):
    assert git_state(tmp_path) == (None, None)
    monkeypatch.setenv("PATH", str(tmp_path))  # no git executable at all
    assert git_state(Path(__file__).parent) == (None, None)


def test_tags_reach_hparams_as_one_string_and_none_as_text():
    assert run_tags(OmegaConf.create({"tags": ["baseline", "ablation"]})) == ["baseline", "ablation"]
    assert run_tags(OmegaConf.create({"tags": "baseline"})) == ["baseline"]
    assert run_tags(OmegaConf.create({})) == []
    flat = as_hyperparameters({"tags": ["a", "b"], "git_commit": None, "parameters": 10})
    assert flat == {"tags": "a,b", "git_commit": "none", "parameters": 10}
