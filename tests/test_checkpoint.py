from pathlib import Path

import pytest
import torch

from rnnlab.checkpoint import load_language_model
from rnnlab.errors import UserError
from rnnlab.models.recurrent import RecurrentNet
from tests.project import checkpoint_vocab, compose_train
from tests.project import save_language_model as save

VOCAB = checkpoint_vocab()


def test_network_and_vocab_come_back_from_the_checkpoint_alone(tmp_path: Path):
    torch.manual_seed(0)
    network = RecurrentNet(len(VOCAB), len(VOCAB), "gru", 12).eval()
    loaded, vocab = load_language_model(save(tmp_path / "lm.ckpt", network))
    tokens = torch.tensor([VOCAB.encode("time")])
    assert vocab == VOCAB
    torch.testing.assert_close(loaded(tokens)[0], network(tokens)[0])


def test_files_that_are_not_rnnlab_language_models_are_refused(tmp_path: Path):
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint")
    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}}, other)
    cases = [
        (tmp_path / "missing.ckpt", "is not a file"),
        (text, "is not a readable PyTorch checkpoint"),
        (other, "is not an rnnlab checkpoint"),
        (save(tmp_path / "sine.ckpt", task="sine"), "checkpoint of the 'sine' task"),
    ]
    for path, message in cases:
        with pytest.raises(UserError, match=message):
            load_language_model(path)


def test_a_checkpoint_cannot_name_a_class_outside_rnnlab(tmp_path: Path):
    path = tmp_path / "evil.ckpt"
    torch.save(
        {
            "state_dict": {},
            "rnnlab": {
                "task": "language_model",
                "vocab": VOCAB.to_dict(),
                "network": {"_target_": "os.system", "command": "echo hi"},
            },
        },
        path,
    )
    with pytest.raises(UserError, match="not one of rnnlab's"):
        load_language_model(path)


def test_a_checkpoint_of_an_older_network_class_asks_for_retraining(tmp_path: Path):
    path = tmp_path / "old.ckpt"
    old_config = {"_target_": "rnnlab.models.recurrent.RecurrentLM", "cell": "gru", "hidden_size": 12}
    rnnlab = {"task": "language_model", "network": old_config, "vocab": VOCAB.to_dict()}
    torch.save({"state_dict": {}, "rnnlab": rnnlab}, path)
    with pytest.raises(UserError, match="probably written by an older version: train it again"):
        load_language_model(path)


@pytest.mark.parametrize("weights_only", [False, True])
def test_every_checkpoint_a_run_writes_rebuilds_its_network(tmp_path: Path, repetitive_corpus, weights_only):
    """Also the weights-only ones, for which Lightning calls no callback."""
    from rnnlab.run.build import build

    cfg = compose_train(
        "data=text",
        f"data.path={repetitive_corpus}",
        "data.batch_size=4",
        "data.num_steps=10",
        "model=gru",
        "model.hidden_size=12",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        f"+callbacks.model_checkpoint.save_weights_only={weights_only}",
        output_dir=str(tmp_path / "run"),
    )
    datamodule, task, trainer = build(cfg)
    trainer.fit(task, datamodule=datamodule)
    network, vocab = load_language_model(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert vocab == datamodule.vocab and network.rnn.hidden_size == 12


def test_a_checkpoint_without_its_network_config_is_one_line(tmp_path: Path):
    path = save(tmp_path / "old.ckpt")
    checkpoint = torch.load(path, weights_only=True)
    del checkpoint["rnnlab"]["network"]
    torch.save(checkpoint, path)
    with pytest.raises(UserError, match="does not say how to rebuild its network"):
        load_language_model(path)
