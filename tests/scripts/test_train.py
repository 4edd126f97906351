"""`scripts/train.py` and `scripts/generate.py` as a user runs them: subprocesses in a fresh directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.project import ROOT

TINY = ["data=text", "data.batch_size=4", "data.num_steps=10", "model.hidden_size=16"]


def run(script: str, *args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RNNLAB_", "HYDRA_"))}
    env["RNNLAB_DATA_DIR"] = str(cwd / "no-data-here")  # never read or download a real corpus
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob(".hydra"))


def test_fast_dev_run_writes_its_files_into_the_run_dir_and_nothing_else(workdir, repetitive_corpus):
    result = run("train.py", *TINY, f"data.path={repetitive_corpus}", "debug=fdr", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [p.name for p in workdir.iterdir()] == ["outputs"]  # no lightning_logs/ or stray files in the cwd
    (run_dir,) = run_dirs(workdir / "outputs")
    assert run_dir.relative_to(workdir / "outputs").parts[0].count("-") == 2  # outputs/<date>/<time>/
    assert (run_dir / ".hydra" / "config.yaml").is_file() and (run_dir / "train.log").is_file()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["val_ppl"] > 1 and metrics["test_ppl"] > 1
    assert "done: best val ppl" in (run_dir / "train.log").read_text()
    assert "\r" not in result.stdout  # not a terminal: log lines, not bar frames
    assert not list(workdir.rglob("lightning_logs"))


def test_two_job_sweep_then_generate_from_a_checkpoint(workdir, repetitive_corpus):
    result = run(
        "train.py",
        "-m",
        "model=rnn,gru",
        *TINY,
        f"data.path={repetitive_corpus}",
        "trainer.max_epochs=2",
        "data.max_tokens=4000",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert [p.name for p in workdir.iterdir()] == ["outputs"]
    jobs = run_dirs(workdir / "outputs" / "multirun")
    common = "data.batch_size=4,data.max_tokens=4000,data.num_steps=10,data=text"
    names = [f"{common},model.hidden_size=16,model={cell},trainer.max_epochs=2" for cell in ("gru", "rnn")]
    assert [job.name for job in jobs] == names  # job folders (and TensorBoard runs) named by their overrides
    for job, cell in zip(jobs, ["gru", "rnn"], strict=True):
        assert f"cell: {cell}" in (job / ".hydra" / "config.yaml").read_text()
        assert list(job.glob("events.out.tfevents.*"))
        assert (job / "checkpoints" / "last.ckpt").is_file()
        metrics = json.loads((job / "metrics.json").read_text())
        assert metrics["status"] == "completed" and metrics["epochs"] == 2 and metrics["tokens_per_s"] > 0
    assert not list(workdir.rglob("lightning_logs"))

    best = json.loads((jobs[0] / "metrics.json").read_text())["best_checkpoint"]
    generated = run("generate.py", f"ckpt={best}", "prefix=the quick", "length=20", cwd=workdir)
    assert generated.returncode == 0, generated.stderr
    assert generated.stdout.startswith("the quick") and len(generated.stdout.strip()) == len("the quick") + 20

    # resume the first job for one more epoch, with a scheduler that steps on validation perplexity
    resumed = run(
        "train.py",
        "model=rnn",
        *TINY,
        f"data.path={repetitive_corpus}",
        "data.max_tokens=4000",
        "trainer.max_epochs=3",
        "scheduler=plateau",
        f'ckpt_path="{jobs[1] / "checkpoints" / "last.ckpt"}"',
        cwd=workdir,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (resumed_dir,) = [d for d in run_dirs(workdir / "outputs") if "multirun" not in d.parts]
    metrics = json.loads((resumed_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["epochs"] == 3 and metrics["steps"] > 0
    assert "Restored all states from the checkpoint" in (resumed_dir / "train.log").read_text()


def test_a_user_mistake_is_one_line_and_leaves_no_claim_of_success(workdir):
    result = run("train.py", *TINY, f"data.path={workdir / 'missing.txt'}", cwd=workdir)
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    errors = [line for line in (result.stdout + result.stderr).splitlines() if "error:" in line]
    assert len(errors) == 1 and "missing.txt does not exist" in errors[0]
    (run_dir,) = run_dirs(workdir / "outputs")
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "failed"


def test_generate_refuses_a_missing_checkpoint(workdir):
    result = run("generate.py", "ckpt=nowhere.ckpt", cwd=workdir)
    assert result.returncode == 2 and "ckpt=nowhere.ckpt is not a file" in result.stderr
