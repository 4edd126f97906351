"""docs/extending.md's two recipes, followed as written: the files it shows are written into a copy of
the repository in a temp folder, and the command it gives trains one step there, as a user runs it."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.project import ROOT, child_environment, write_repetitive_corpus

RECIPES = ROOT / "docs" / "extending.md"
pytestmark = pytest.mark.slow


def files_in_recipe(section: str) -> dict[str, str]:
    """The files a section of docs/extending.md tells the reader to write: a `path`: line, then its block."""
    text = RECIPES.read_text()
    start = text.index(f"## {section}")
    end = text.find("\n## ", start + 1)
    body = text[start : end if end > 0 else None]
    found = dict(re.findall(r"^`([\w/.]+)`:\n\n```\w+\n(.*?)```", body, flags=re.S | re.M))
    assert found, f"docs/extending.md's {section!r} shows no files"
    return found


def command_in_recipe(section: str) -> list[str]:
    """The recipe's first command (its one-step check), split into words."""
    text = RECIPES.read_text()
    body = text[text.index(f"## {section}") :]
    line = re.search(r"^python scripts/train\.py ([^#\n]+)", body, flags=re.M).group(1)
    return line.split()


def repository_copy(folder: Path) -> Path:
    """What a user has checked out: the package, the configs and the scripts."""
    for part in ("src", "conf", "scripts"):
        shutil.copytree(
            ROOT / part, folder / part, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
        )
    return folder


def train_there(copy: Path, args: list[str], **env: str) -> subprocess.CompletedProcess:
    environment = child_environment(copy, PYTHONPATH=str(copy / "src"), **env)
    return subprocess.run(
        [sys.executable, "scripts/train.py", *args, "test=false"],
        cwd=copy,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_add_a_model_recipe_trains_a_step(tmp_path):
    copy = repository_copy(tmp_path / "checkout")
    written = files_in_recipe("Add a model")
    assert sorted(written) == ["conf/model/indrnn.yaml", "src/rnnlab/models/indrnn.py"]  # the 2 files
    for name, text in written.items():
        (copy / name).write_text(text)
    args = command_in_recipe("Add a model")
    assert args == ["model=indrnn", "trainer.max_steps=1"]
    finished = train_there(copy, [*args, "data.max_tokens=3000", "data.num_steps=10"])
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "done: best val ppl" in finished.stdout + finished.stderr
    # the network trained is the recipe's, from the copy (not a model the repository already has)
    (config,) = (copy / "outputs").glob("*/*/.hydra/config.yaml")
    assert "rnnlab.models.indrnn.IndRNN" in config.read_text()


def test_the_add_a_corpus_recipe_trains_a_step(tmp_path):
    copy = repository_copy(tmp_path / "checkout")
    ((name, text),) = files_in_recipe("Add a corpus").items()
    assert name == "conf/data/mycorpus.yaml"  # the 1 file
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    corpus = write_repetitive_corpus(data_dir / "mycorpus.txt")
    checksum = hashlib.sha256(corpus.read_bytes()).hexdigest()
    (copy / name).write_text(text.replace("SHA256_OF_THE_FILE", checksum))
    args = command_in_recipe("Add a corpus")
    assert args == ["data=mycorpus", "trainer.max_steps=1"]
    finished = train_there(copy, [*args, "data.num_steps=10"], RNNLAB_DATA_DIR=str(data_dir))
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "done: best val ppl" in finished.stdout + finished.stderr

    # a file that does not match the recipe's checksum is refused in one line, and not trained on
    corpus.write_text(corpus.read_text() + "changed")
    refused = train_there(copy, args, RNNLAB_DATA_DIR=str(data_dir))
    assert refused.returncode == 2, refused.stderr[-3000:]
    errors = [line for line in (refused.stdout + refused.stderr).splitlines() if "error:" in line]
    assert len(errors) == 1 and f"does not have the expected SHA-256 {checksum}" in errors[0], errors
