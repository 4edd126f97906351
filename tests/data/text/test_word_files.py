"""The word corpora (data=ptb, data=wikitext2): three published files read as they are, every line
break an <eos>, checksums verified; word samples without <unk>; the Zaremba et al. schedule."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from rnnlab.data.text.vocab import UNKNOWN, Vocab
from rnnlab.errors import UserError
from rnnlab.generation import Sampling, stream
from rnnlab.run.build import create
from tests.test_configs import compose_train

PTB_FILES = ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt")


def write_split(folder: Path, names: tuple[str, ...], texts: tuple[str, str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in zip(names, texts, strict=True):
        (folder / name).write_text(text)
    return folder


def datamodule(*overrides: str):
    data = create(compose_train(*overrides).data)
    data.prepare_data()
    data.setup("fit")
    return data


def test_three_files_are_the_three_splits_with_an_eos_at_every_line_break(tmp_path):
    folder = write_split(
        tmp_path / "ptb",
        PTB_FILES,
        (" the cat sat <unk> \n the dog sat \n", " the cat \n", " a dog \n the \n"),
    )
    data = datamodule(
        "data=ptb", f"data.path={folder}", "data.batch_size=1", "data.num_steps=2", "data.eval_batch_size=1"
    )
    vocab, splits = data.vocab, data.split_tokens
    assert {name: len(ids) for name, ids in splits.items()} == {"train": 9, "val": 3, "test": 5}
    assert vocab.decode(splits["train"]) == "the cat sat <unk> <eos> the dog sat <eos>"
    assert vocab.decode(splits["test"]) == "a dog <eos> the <eos>"
    assert vocab.tokens[0] == UNKNOWN and vocab.index["<eos>"] > 0 and splits["train"][3] == 0
    assert len(vocab) == 7  # <unk>, <eos>, the, cat, sat, dog, a: the words of all three files
    assert data.summary()["split_tokens"] == {"train": 9, "val": 3, "test": 5}

    plain = datamodule(
        "data=ptb",
        f"data.path={folder}",
        "data.eos=false",
        "data.batch_size=1",
        "data.num_steps=2",
        "data.eval_batch_size=1",
    )
    assert len(plain.split_tokens["train"]) == 7 and "<eos>" not in plain.vocab.index


@pytest.mark.parametrize(
    ("corpus", "names", "published"),
    [
        ("ptb", PTB_FILES, 10_000),
        ("wikitext2", ("train.txt", "valid.txt", "test.txt"), 33_278),
    ],
)
def test_the_published_vocabulary_sizes_count_unk_and_eos(tmp_path, corpus, names, published):
    """Files of the published layout with as many distinct words as the real ones give the published
    vocabulary size: the words, <unk> (written in the files) and <eos>."""
    words = [f"w{i}" for i in range(published - 2)]
    lines = [" ".join(words[i : i + 20]) + " <unk>" for i in range(0, len(words), 20)]
    folder = write_split(tmp_path / corpus, names, ("\n".join(lines) + "\n", "w1 w2\n" * 30, "w3 w4\n" * 30))
    data = datamodule(f"data={corpus}", f"data.path={folder}", "data.batch_size=2", "data.eval_batch_size=2")
    assert len(data.vocab) == published
    assert len(data.split_tokens["train"]) == len(words) + 2 * len(
        lines
    )  # each line: its words, <unk>, <eos>


def test_a_copy_in_the_data_directory_is_checked_against_its_sha256(tmp_path):
    texts = ("a b c\n" * 50, "a b\n" * 20, "b c\n" * 20)
    folder = write_split(tmp_path / "data" / "ptb", PTB_FILES, texts)
    digest = {
        role: hashlib.sha256(text.encode()).hexdigest()
        for role, text in zip(("train", "valid", "test"), texts, strict=True)
    }
    ok = [
        f"paths.data_dir={tmp_path / 'data'}",
        "data.batch_size=2",
        "data.eval_batch_size=2",
        *(f"data.sha256.{role}={value}" for role, value in digest.items()),
    ]
    assert len(datamodule("data=ptb", *ok).split_tokens["train"]) == 200
    (folder / "ptb.valid.txt").write_text("a b\n" * 19)  # damaged
    with pytest.raises(UserError, match="expected SHA-256"):
        datamodule("data=ptb", *ok)


def test_a_missing_file_without_a_checksum_is_not_downloaded_and_the_error_says_where_it_goes(tmp_path):
    with pytest.raises(UserError, match=r"ptb[/\\]ptb.train.txt does not exist"):
        datamodule(
            "data=ptb",
            f"paths.data_dir={tmp_path}",
            "data.base_url=http://127.0.0.1:9/nothing",
            "data.sha256.valid=null",
            "data.sha256.test=null",
        )


class FavoursUnknown(nn.Module):
    """A stand-in network whose most likely next token is always <unk> (id 0), then id 2."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.size = size

    def forward(self, ids, state=None):
        logits = torch.zeros(*ids.shape, self.size)
        logits[..., 0], logits[..., 2] = 10.0, 5.0
        return logits, state


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_word_samples_never_hold_unk_unless_asked(temperature):
    vocab = Vocab([UNKNOWN, "the", "cat", "<eos>"], joiner=" ")
    generator = torch.Generator().manual_seed(0)
    sampled = "".join(stream(FavoursUnknown(4), vocab, "the", 30, Sampling(temperature), generator))
    assert UNKNOWN not in sampled and "cat" in sampled
    asked = "".join(
        stream(FavoursUnknown(4), vocab, "the", 30, Sampling(temperature, allow_unknown=True), generator)
    )
    assert UNKNOWN in asked


def test_ptb_zaremba_small_is_the_papers_small_setup():
    cfg = compose_train("experiment=ptb_zaremba_small")
    assert (cfg.model.cell, cfg.model.num_layers, cfg.model.hidden_size, cfg.model.embedding_dim) == (
        "lstm",
        2,
        200,
        200,
    )
    assert cfg.model.dropout == 0 and cfg.model.init_range == 0.1 and cfg.task.gradient_clip_val == 5
    assert (cfg.data.batch_size, cfg.data.num_steps, cfg.trainer.max_epochs) == (20, 20, 13)
    network = instantiate(cfg.model, input_size=50, output_size=50)
    assert all(p.abs().max() <= 0.1 for p in network.parameters())
    optimizer = instantiate(cfg.optimizer)(network.parameters())
    scheduler = instantiate(cfg.scheduler)(optimizer)
    rates = []
    for _ in range(13):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates == [1.0] * 4 + [0.5**k for k in range(1, 10)]
