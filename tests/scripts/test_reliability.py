"""Bad input fails in one line; faults lose nothing. The scripts' `main` is called in-process (output,
refusals, files); generate.py also runs as a user starts it, in a fresh interpreter."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from tests.project import TINY, call, load_script, run
from tests.project import save_language_model as save

pytestmark = pytest.mark.slow  # whole runs: `pytest -m "not slow"` leaves them out

DETERMINISTIC = ["trainer.deterministic=true", "seed=3"]


def metrics_of(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("metrics.json"))]


def no_claim_of_success(workdir: Path) -> bool:
    return all(m["status"] != "completed" for m in metrics_of(workdir))


# As a user meets them: one line, exit 2. Every setting check is tested in-process in tests/run/test_train.py.
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.hidden_size=0"], "model.hidden_size=0 must be positive"),
        (["ckpt_path=last"], "resume=last: no run under outputs has a checkpoint"),
    ],
)
def test_bad_settings_fail_in_one_line_before_training(workdir, repetitive_corpus, overrides, message, capfd):
    result = call("train.py", *TINY, f"data.path={repetitive_corpus}", *overrides, cwd=workdir, capfd=capfd)
    output = result.stdout + result.stderr
    assert result.returncode == 2 and "Traceback" not in output
    errors = [line for line in output.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0], output[-2000:]
    assert no_claim_of_success(workdir) and not list(workdir.rglob("*.ckpt"))


# One damaged corpus through the command line; every kind is tested in-process in tests/run/test_train.py.
@pytest.mark.parametrize(("content", "message"), [(b"\x00\x01binary", "looks binary")])
def test_bad_corpus_files_fail_in_one_line(workdir, content, message, capfd):
    corpus = workdir / "corpus.txt"
    corpus.write_bytes(content)
    result = call("train.py", *TINY, f"data.path={corpus}", cwd=workdir, capfd=capfd)
    output = result.stdout + result.stderr
    assert result.returncode == 2 and "Traceback" not in output
    assert message in output and no_claim_of_success(workdir)


def test_a_data_directory_copy_with_a_wrong_checksum_is_refused(workdir, capfd):
    data_dir = workdir / "data"
    data_dir.mkdir()
    (data_dir / "timemachine.txt").write_text("not the time machine\n" * 500)
    env_overrides = [f"paths.data_dir={data_dir}", "data.batch_size=4", "data.num_steps=10"]
    result = call("train.py", *env_overrides, cwd=workdir, capfd=capfd)
    assert result.returncode == 2
    assert "timemachine.txt does not have the expected SHA-1 090b5e7e" in result.stdout + result.stderr
    assert (data_dir / "timemachine.txt").exists() and no_claim_of_success(workdir)


def test_unknown_choices_list_the_available_ones(workdir, capfd):
    result = call("train.py", "model=transformer", cwd=workdir, capfd=capfd)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "Could not find 'model/transformer'" in result.stderr and "rnn_scratch" in result.stderr
    assert not (workdir / "outputs").exists()


def test_a_non_finite_loss_stops_training_and_keeps_earlier_checkpoints(workdir, repetitive_corpus, capfd):
    """Epoch 1 trains at a sane rate and saves its checkpoints; the schedule then multiplies the rate by
    1e39, so the loss becomes non-finite early in epoch 2."""
    import torch

    result = call(
        "train.py",
        "model=lstm",
        *TINY[:3],
        f"data.path={repetitive_corpus}",
        "data.max_tokens=4000",
        "optimizer=sgd",
        "optimizer.lr=0.1",
        "task.gradient_clip_val=null",
        "scheduler=cosine",
        "scheduler._target_=torch.optim.lr_scheduler.ExponentialLR",
        "~scheduler.T_max",
        "+scheduler.gamma=1e39",
        "trainer.max_epochs=3",
        cwd=workdir,
        capfd=capfd,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2 and "Traceback" not in output, result.why()
    assert "the loss became" in output and " at step " in output and "(epoch 2)" in output
    assert "optimizer.lr=1e+38" in output
    (metrics,) = metrics_of(workdir)
    assert metrics["status"] == "failed" and "TrainingDiverged" in metrics["error"]
    folders = list(workdir.rglob("checkpoints"))
    assert len(folders) == 1, f"the run's checkpoints folder: {folders}; {result.why()}"
    (checkpoints,) = folders
    kept = sorted(p.name for p in checkpoints.iterdir())
    assert len(kept) == 2 and kept[0].startswith("best-epoch000-") and kept[1] == "last.ckpt", kept
    steps = set()
    for name in kept:  # epoch 1's, whole: finite weights at its last step
        saved = torch.load(checkpoints / name, map_location="cpu", weights_only=True)
        assert saved["epoch"] == 0 and all(torch.isfinite(w).all() for w in saved["state_dict"].values()), (
            name
        )
        steps.add(saved["global_step"])
    assert len(steps) == 1 and f"at step {steps.pop() + 1} " not in output  # epoch 2 had a good step first


@pytest.fixture
def language_model_checkpoint(tmp_path: Path) -> Path:
    return save(tmp_path / "lm.ckpt")


BAD_REQUESTS = [
    (["ckpt=missing.ckpt"], "ckpt=missing.ckpt is not a file"),
    (["ckpt={notes}"], "is not a readable PyTorch checkpoint"),
    (["ckpt={other}"], "is not an rnnlab checkpoint"),
    (["ckpt={sine}"], "checkpoint of the 'sine' task"),
    (["ckpt={lm}", "prefix="], "the prefix is empty"),
    (["ckpt={lm}", "length=0"], "length=0 must be at least 1"),
    (["ckpt={lm}", "prefix=Time"], "outside the model's"),
    (["ckpt={lm}", "length=many"], "could not be converted to Integer"),
    # the prefix is text as typed, never YAML: a mapping or a number here would be a config error
    (["ckpt={lm}", "prefix=ROMEO:"], "vocabulary: ':', 'E', 'M', 'O', 'R';"),
    (["ckpt={lm}", "prefix=12"], "vocabulary: '1', '2';"),
    (["ckpt={lm}", "temperature=1", "top_p=1.5"], "top_p=1.5 must be in (0, 1]"),
    (["ckpt={lm}", "repetition_penalty=0"], "repetition_penalty=0.0 must be positive"),
    (["ckpt={lm}", "num_samples=0"], "num_samples=0 must be at least 1"),
]


def generate_arguments(args: list[str], tmp_path: Path, language_model_checkpoint: Path) -> list[str]:
    import torch

    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}}, other)
    paths = {
        "lm": language_model_checkpoint,
        "notes": notes,
        "other": other,
        "sine": save(tmp_path / "s.ckpt", task="sine"),
    }
    return [a.format(**paths) for a in args]


@pytest.mark.parametrize(("args", "message"), BAD_REQUESTS)
def test_generate_refuses_each_bad_request_in_one_line(
    workdir, tmp_path, capfd, language_model_checkpoint, args, message
):
    arguments = generate_arguments(args, tmp_path, language_model_checkpoint)
    result = call("generate.py", *arguments, cwd=workdir, capfd=capfd)
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and message in line


def test_generate_refuses_a_bad_request_in_one_line_as_a_user_starts_it(
    workdir, tmp_path, language_model_checkpoint
):
    """A fresh interpreter: what its start prints (an import-time warning) would show here."""
    args, message = BAD_REQUESTS[3]
    result = run("generate.py", *generate_arguments(args, tmp_path, language_model_checkpoint), cwd=workdir)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and message in line


def test_generate_help_lists_every_setting_and_a_mistyped_one_is_one_line(workdir, capfd):
    generate = load_script("generate")
    result = call("generate.py", "-h", cwd=workdir, capfd=capfd)
    assert result.returncode == 0 and result.stderr == ""
    usage = result.stdout.splitlines()[0]
    assert usage.startswith("usage: python scripts/generate.py ckpt=PATH")
    assert usage.count("[") == usage.count("]")  # no bracket left open
    for field in dataclasses.fields(generate.GenerateConfig):
        assert any(line.startswith(f"  {field.name}=") for line in result.stdout.splitlines()), field.name
    result = call("generate.py", "ckpt=x.ckpt", "lenght=5", cwd=workdir, capfd=capfd)
    (line,) = result.stderr.splitlines()
    assert result.returncode == 2 and line.startswith("error: Key 'lenght' not in 'GenerateConfig'")
    assert "length" in line and "--help" in line


def test_generate_prints_several_samples_each_starting_with_the_prefix(
    workdir, language_model_checkpoint, capfd
):
    args = [f"ckpt={language_model_checkpoint}", "prefix=time", "length=12", "temperature=1", "top_p=0.9"]
    result = call("generate.py", *args, "num_samples=3", "repetition_penalty=1.3", cwd=workdir, capfd=capfd)
    assert result.returncode == 0, result.why()
    lines = result.stdout.splitlines()
    assert lines[0::2] == ["[sample 1]", "[sample 2]", "[sample 3]"]
    assert all(
        line.startswith("time") and len(line) >= 16 for line in lines[1::2]
    )  # 12 tokens (<unk> is 5 chars)
    # the one generate.py started as a user starts it (a fresh interpreter)
    greedy = run("generate.py", f"ckpt={language_model_checkpoint}", "prefix=time", "length=12", cwd=workdir)
    assert greedy.stdout.count("\n") == 1 and greedy.stdout.startswith("time")


def test_a_model_that_cannot_read_the_data_is_refused_before_anything_runs(workdir, capfd):
    result = call("train.py", "model=cnn", "data=timemachine", cwd=workdir, capfd=capfd)
    output = result.stdout + result.stderr
    assert result.returncode == 2 and "Traceback" not in output
    line = output.strip().splitlines()[-1]
    assert "model=cnn takes images" in line and "data=timemachine gives token sequences" in line
    assert line.endswith("with data=timemachine use model=awd_lstm|gru|lstm|rnn|rnn_cell|rnn_scratch")
    assert not list(workdir.rglob("*.ckpt")) and not list(workdir.rglob("timemachine.txt"))
