"""The standard corpora's configs, each run offline on a small file laid out like the real one."""

from __future__ import annotations

import json
import math
import re
import zipfile
from pathlib import Path

import pytest

from tests.project import call, run_dirs

pytestmark = (
    pytest.mark.slow
)  # whole runs (train.py's main in-process): `pytest -m "not slow"` leaves them out

SHAKESPEARE = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n" * 80
WIKI = (
    '<page>\n  <title>Anarchism</title>\n  <text xml:space="preserve">Anarchism is a [[political philosophy]]'
)


def member_text(name: str, corpus: Path) -> bytes:
    """What the config should read: the file itself, or the named member of the zip (not readme.txt)."""
    if corpus.suffix != ".zip":
        return corpus.read_bytes()
    with zipfile.ZipFile(corpus) as archive:
        return archive.read(name)


def small_corpus(name: str, folder: Path) -> Path:
    """tiny-shakespeare: a text file; text8: a zip holding `text8` (a-z and spaces, no newline);
    enwik8: a zip holding `enwik8` (XML with UTF-8 and a byte that is not)."""
    if name == "tinyshakespeare":
        path = folder / "input.txt"
        path.write_text(SHAKESPEARE)
        return path
    if name == "text8":
        content = (
            " anarchism originated as a term of abuse first used against early working class" * 60
        ).encode()
    else:
        content = (
            WIKI + " Größe 時間 &amp; [[Category:Anarchism]]</text>\n</page>\n"
        ).encode() * 40 + b"\xff"
    path = folder / f"{name}.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("readme.txt", "another member, never read")
        archive.writestr(name, content)
    return path


@pytest.mark.parametrize(
    ("name", "tokens", "vocab"),
    [("tinyshakespeare", "char", None), ("text8", "char", None), ("enwik8", "byte", 256)],
)
def test_each_corpus_config_trains_offline_on_a_file_of_its_layout(
    workdir, tmp_path, isolated, capfd, name, tokens, vocab
):
    corpus = small_corpus(name, tmp_path)
    if vocab is None:  # raw characters: each distinct one, and <unk>
        vocab = len(set(member_text(name, corpus).decode())) + 1
    result = call(
        "train.py",
        f"data={name}",
        f"data.path={corpus}",
        "data.batch_size=4",
        "data.num_steps=10",
        "data.eval_max_tokens=200",
        "model.hidden_size=16",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=5",
        cwd=workdir,
        capfd=capfd,
    )
    assert result.returncode == 0, result.why()
    (run_dir,) = run_dirs(workdir / "outputs")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["val_tokens_scored"] == 200
    logged = (run_dir / "train.log").read_text()
    if name == "tinyshakespeare":  # nanoGPT's split: no test block; val loss in nats as nanoGPT reports it
        assert metrics["test_ppl"] is None and "no test split (data.splits gives it 0)" in logged
        assert metrics["val_loss"] == pytest.approx(math.log(metrics["val_ppl"]), rel=1e-5)
    else:
        assert 0 < metrics["test_bpc"] == pytest.approx(math.log2(metrics["test_ppl"]), rel=1e-5)
    assert re.search(rf"{tokens} tokens, vocab {vocab}\b", logged), logged  # read from its layout's member
    assert not [p for p in isolated.data_dir.glob("*") if p.name != "cache"]  # nothing downloaded
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == [corpus.name]  # nor unpacked beside it
    assert "val scored its first 200 tokens only (data.eval_max_tokens)" in logged
