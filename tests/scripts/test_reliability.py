"""Bad input fails in one line; faults lose nothing; a run killed and resumed ends where it would have."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.project import ROOT
from tests.scripts.test_train import TINY, run

pytestmark = pytest.mark.slow  # CLI subprocesses: `pytest -m "not slow"` leaves them out

DETERMINISTIC = ["trainer.deterministic=true", "seed=3"]


def metrics_of(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("metrics.json"))]


def no_claim_of_success(workdir: Path) -> bool:
    return all(m["status"] != "completed" for m in metrics_of(workdir))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.hidden_size=0"], "model.hidden_size=0 must be positive"),
        (["data.batch_size=0"], "data.batch_size=0 must be positive"),
        (["data.num_steps=-5"], "data.num_steps=-5 must be positive"),
        (["trainer.max_epochs=0"], "trainer.max_epochs=0 must be at least 1"),
        (["optimizer.lr=-1"], "optimizer.lr=-1 must be positive"),
        (["task.tbptt_steps=0"], "task.tbptt_steps=0 must be at least 1"),
        (["task.tbptt_steps=11"], "task.tbptt_steps=11 is longer than a training sequence"),
        (["data.batch_size=4096"], "too few for batch_size=4096"),
        (["data.sampling=shuffle"], "data.sampling='shuffle' is unknown"),
        (["ckpt_path=nowhere.ckpt"], "ckpt_path=nowhere.ckpt is not a file"),
        (["ckpt_path=last"], "ckpt_path=last: no checkpoints/last.ckpt under outputs"),
    ],
)
def test_bad_settings_fail_in_one_line_before_training(workdir, repetitive_corpus, overrides, message):
    result = run("train.py", *TINY, f"data.path={repetitive_corpus}", *overrides, cwd=workdir)
    output = result.stdout + result.stderr
    assert result.returncode == 2 and "Traceback" not in output
    errors = [line for line in output.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0], output[-2000:]
    assert no_claim_of_success(workdir) and not list(workdir.rglob("*.ckpt"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("dir", "is a directory"),
        (b"", "is empty"),
        (b"\x00\x01binary", "looks binary"),
        ("caf\xe9 au lait".encode("latin-1") * 50, "is not UTF-8"),
        (b"aaaa\n" * 200, "has 1 distinct char token"),
    ],
)
def test_bad_corpus_files_fail_in_one_line(workdir, content, message):
    corpus = workdir / "corpus.txt"
    if content == "dir":
        corpus.mkdir()
    else:
        corpus.write_bytes(content)
    result = run("train.py", *TINY, f"data.path={corpus}", cwd=workdir)
    output = result.stdout + result.stderr
    assert result.returncode == 2 and "Traceback" not in output
    assert message in output and no_claim_of_success(workdir)


def test_a_data_directory_copy_with_a_wrong_checksum_is_refused(workdir):
    data_dir = workdir / "data"
    data_dir.mkdir()
    (data_dir / "timemachine.txt").write_text("not the time machine\n" * 500)
    env_overrides = [f"paths.data_dir={data_dir}", "data.batch_size=4", "data.num_steps=10"]
    result = run("train.py", *env_overrides, cwd=workdir)
    assert result.returncode == 2
    assert "timemachine.txt does not have the expected SHA-1 090b5e7e" in result.stdout + result.stderr
    assert (data_dir / "timemachine.txt").exists() and no_claim_of_success(workdir)


def test_unknown_choices_list_the_available_ones(workdir):
    result = run("train.py", "model=transformer", cwd=workdir)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "Could not find 'model/transformer'" in result.stderr and "rnn_scratch" in result.stderr
    assert not (workdir / "outputs").exists()


def test_a_non_finite_loss_stops_training_and_keeps_earlier_checkpoints(workdir, repetitive_corpus):
    result = run(
        "train.py",
        "model=lstm",
        *TINY[:3],
        f"data.path={repetitive_corpus}",
        "optimizer=sgd",
        "optimizer.lr=1e38",
        "task.gradient_clip_val=null",
        cwd=workdir,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2 and "Traceback" not in output
    assert "the loss became" in output and "at step " in output and "optimizer.lr=1e+38" in output
    (metrics,) = metrics_of(workdir)
    assert metrics["status"] == "failed" and "TrainingDiverged" in metrics["error"]
    assert not list(workdir.rglob("interrupted.ckpt"))  # no checkpoint of the broken weights


def start(workdir: Path, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RNNLAB_", "HYDRA_"))}
    env["PYTHONUNBUFFERED"] = "1"
    return subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "train.py"), *args],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_line(process: subprocess.Popen, text: str) -> list[str]:
    seen = []
    for line in process.stdout:
        seen.append(line)
        if text in line:
            return seen
    raise AssertionError(f"the run ended before printing {text!r}:\n{''.join(seen[-30:])}")


# 18,000 training tokens: epoch 3 lasts long enough (hundreds of steps) to be killed in the middle
SLOW_TINY = [*TINY, "data.max_tokens=20000", "trainer.max_epochs=3", *DETERMINISTIC]


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_ctrl_c_saves_a_checkpoint_and_says_how_to_resume(workdir, repetitive_corpus, stop):
    process = start(workdir, *SLOW_TINY, f"data.path={repetitive_corpus}", "trainer.max_epochs=50")
    try:
        wait_for_line(process, "epoch 1/50")
        process.send_signal(stop)
        rest = process.stdout.read()
        assert process.wait(timeout=60) != 0
    finally:
        process.kill()
    (checkpoint,) = workdir.rglob("interrupted.ckpt")
    assert f"'ckpt_path=\"{checkpoint.resolve()}\"'" in rest  # quoted for the shell and for Hydra
    assert metrics_of(workdir)[0]["status"] == "interrupted"
    resumed = run("train.py", *SLOW_TINY, f"data.path={repetitive_corpus}", "ckpt_path=last", cwd=workdir)
    assert resumed.returncode == 0, resumed.stdout[-2000:]
    assert "resuming from" in resumed.stdout and "interrupted.ckpt" in resumed.stdout


def test_killed_and_resumed_run_ends_like_an_uninterrupted_one(tmp_path, repetitive_corpus):
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    straight.mkdir()
    broken.mkdir()
    args = [*SLOW_TINY, f"data.path={repetitive_corpus}"]
    assert run("train.py", *args, cwd=straight).returncode == 0
    (expected,) = metrics_of(straight)

    process = start(broken, *args)
    try:
        wait_for_line(process, "epoch 2/3")  # epoch 2's last.ckpt is written before this line
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=60) == -signal.SIGKILL  # it died mid-run, epoch 3 unfinished
    finally:
        process.kill()
    assert metrics_of(broken) == [] or no_claim_of_success(broken)

    resumed = run("train.py", *args, "ckpt_path=last", cwd=broken)
    assert resumed.returncode == 0, resumed.stdout[-2000:]
    (after,) = [m for m in metrics_of(broken) if m["status"] == "completed"]
    assert after["epochs"] == expected["epochs"] == 3
    assert after["val_ppl"] == expected["val_ppl"] and after["test_ppl"] == expected["test_ppl"]


@pytest.fixture
def language_model_checkpoint(tmp_path: Path) -> Path:
    from tests.test_checkpoint import save

    return save(tmp_path / "lm.ckpt")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ckpt=missing.ckpt"], "ckpt=missing.ckpt is not a file"),
        (["ckpt={notes}"], "is not a readable PyTorch checkpoint"),
        (["ckpt={other}"], "is not an rnnlab checkpoint"),
        (["ckpt={sine}"], "checkpoint of the 'sine' task"),
        (["ckpt={lm}", "prefix="], "the prefix is empty"),
        (["ckpt={lm}", "length=0"], "length=0 must be at least 1"),
        (["ckpt={lm}", "prefix=Time"], "outside the model's"),
        (["ckpt={lm}", "length=many"], "could not be converted to Integer"),
    ],
)
def test_generate_refuses_bad_requests_in_one_line(
    workdir, tmp_path, language_model_checkpoint, args, message
):
    import torch

    from tests.test_checkpoint import save

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
    result = run("generate.py", *(a.format(**paths) for a in args), cwd=workdir)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and message in line


def test_a_model_that_cannot_read_the_data_is_refused_before_anything_runs(workdir):
    result = run("train.py", "model=cnn", "data=timemachine", cwd=workdir)
    output = result.stdout + result.stderr
    assert result.returncode == 2 and "Traceback" not in output
    line = output.strip().splitlines()[-1]
    assert "model=cnn takes images" in line and "data=timemachine gives token sequences" in line
    assert line.endswith("with data=timemachine use model=gru|lstm|rnn|rnn_cell|rnn_scratch")
    assert not list(workdir.rglob("*.ckpt")) and not list(workdir.rglob("timemachine.txt"))
