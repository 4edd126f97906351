"""The damage matrix: every file a run writes and rnnlab reads back, damaged three ways, read back by
every command that reads it. Each command recovers (as documented in README's "Damaged files") or
stops with one line and a non-zero exit, never with a traceback, and never deletes a file it did
not write (a damaged file is renamed aside, `NAME.damaged`, or rebuilt).

The files read back, by their readers (`rnnlab.readback` and every caller of read_json, read_yaml,
read_overrides and set_aside; the checkpoints through `rnnlab.checkpoint`; the study through Optuna):
a run's checkpoints, metrics.json, .hydra/{overrides,hydra,config}.yaml, event files, run.lock and
checkpoints/eval.json; the token cache's meta.json, vocab.json and ids.bin; a sweep's
sweep_command.yaml; a search's study.db.

What the cases copy is built once per session, by train.py's and eval.py's main in this process: a
finished two-job sweep, one job scored by eval.py (its eval.json), and a finished one-trial search.
The commands run in-process where that reads the files the same way (rewrite_command and job_plan for
a resume, the datamodule for a new run, the scripts' main functions); a search's resume runs train.py's
whole main. A resume that recovers in the matrix must also train:
`test_a_resume_past_a_damaged_file_trains_to_the_end` resumes past each file a resume reads, through
train.py's main (Hydra and Lightning), to the end of a longer schedule. `test_as_a_user_sees_it` runs
each kind of command once as a subprocess, as a user starts it. A new file joins the matrix with one
line in `FILES`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from rnnlab.errors import UserError
from tests.project import ROOT, TINY, call, load_script, write_repetitive_corpus

# The sweep the cases copy is built by the CLI, once: one worker runs them all (a module fixture would be
# built again on every worker, and again whenever a worker came back to this module).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("damage")]

JOBS = ("model=gru", "model=rnn")  # the damage goes into model=rnn; model=gru stays whole
DAMAGED_JOB = "sweep/model=rnn"
SWEEP_ARGS = ["-m", "model=rnn,gru", *TINY, "trainer.max_epochs=1", "data.max_tokens=2000"]
# A one-trial search (the learning rate and dropout searched; the network fixed small)
SEARCH_ARGS = [
    "hparams_search=lm_optuna",
    *TINY,
    "model.num_layers=1",
    "task.tbptt_steps=10",
    "data.max_tokens=2000",
    "trainer.max_epochs=1",
    "hydra.sweeper.n_trials=1",
]

RECOVERED, ONE_LINE, EITHER = "recovered", "one line", "recovered or one line"


@dataclass(frozen=True)
class Target:
    """A file, by a glob under the case's folder, and what each command that reads it must do."""

    name: str
    glob: str
    readers: dict[str, str]  # command -> RECOVERED, ONE_LINE or EITHER (for every kind of damage)
    deleted: dict[str, str] | None = None  # where deleting it has another answer than damaging it


FILES = [
    Target("last.ckpt", f"{DAMAGED_JOB}/checkpoints/last.ckpt", {"resume": RECOVERED, "generate": ONE_LINE}),
    Target(
        "best-*.ckpt", f"{DAMAGED_JOB}/checkpoints/best-*.ckpt", {"resume": RECOVERED, "generate": ONE_LINE}
    ),
    Target(
        "metrics.json",
        f"{DAMAGED_JOB}/metrics.json",
        {"resume": RECOVERED, "compare": RECOVERED, "tutorials": ONE_LINE, "sweep resume": RECOVERED},
    ),
    Target(
        ".hydra/overrides.yaml",
        f"{DAMAGED_JOB}/.hydra/overrides.yaml",
        {"resume": EITHER, "compare": RECOVERED},
        deleted={"resume": ONE_LINE, "compare": RECOVERED},  # no longer a run folder
    ),
    Target(".hydra/hydra.yaml", f"{DAMAGED_JOB}/.hydra/hydra.yaml", {"resume": RECOVERED}),
    Target(
        ".hydra/config.yaml", f"{DAMAGED_JOB}/.hydra/config.yaml", {"resume": RECOVERED, "compare": RECOVERED}
    ),
    Target("events.out.tfevents", f"{DAMAGED_JOB}/events.out.tfevents.*.0", {"compare": RECOVERED}),
    Target("eval.json", f"{DAMAGED_JOB}/checkpoints/eval.json", {"compare": RECOVERED, "eval": RECOVERED}),
    Target("run.lock (stale)", f"{DAMAGED_JOB}/run.lock", {"resume": RECOVERED}),
    Target("cache meta.json", "data/cache/*/meta.json", {"new run": RECOVERED}),
    Target("cache vocab.json", "data/cache/*/vocab.json", {"new run": RECOVERED}),
    Target("cache ids.bin", "data/cache/*/ids.bin", {"new run": RECOVERED}),
    Target("sweep_command.yaml", "sweep/sweep_command.yaml", {"sweep resume": ONE_LINE}),
    Target("study.db", "search/study.db", {"search resume": ONE_LINE}),
]


def cut_to_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def garbage(path: Path) -> None:
    path.write_bytes(b"\xff\xfe\x00 these bytes parse as nothing rnnlab writes {[\x80")


def deleted(path: Path) -> None:
    path.unlink()


DAMAGE: dict[str, Callable[[Path], None]] = {
    "cut to half": cut_to_half,
    "garbage": garbage,
    "deleted": deleted,
}


def environment(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RNNLAB_", "HYDRA_"))}
    return {**env, "RNNLAB_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}


def script(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / name), *args],
        cwd=cwd,
        env=environment(cwd / "data"),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="session")
def finished(tmp_path_factory) -> Path:
    """A folder with `corpus.txt`, `data/` (its token cache), `sweep/`: two finished one-epoch jobs, one
    of them scored by eval.py and left with the lock of a run that was killed (a dead process's pid),
    and `search/`: a finished one-trial search."""
    base = tmp_path_factory.mktemp("finished")
    corpus = write_repetitive_corpus(base / "corpus.txt")
    # made in-process (what is damaged is the files; the damaged commands run as processes below)
    for args, folder in ((SWEEP_ARGS, "sweep"), (SEARCH_ARGS, "search")):
        result = call(
            "train.py",
            *args,
            f"data.path={corpus}",
            f"hydra.sweep.dir={base / folder}",
            cwd=base,
            capfd=None,
            RNNLAB_DATA_DIR=str(base / "data"),
        )
        assert result.returncode == 0, result.stderr[-3000:]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RNNLAB_DATA_DIR", str(base / "data"))
        with contextlib.redirect_stderr(io.StringIO()):
            assert load_script("eval").main([f"run={base / DAMAGED_JOB}"]) == 0
    dead = subprocess.run(
        [sys.executable, "-c", "from rnnlab.run.lock import lock_text; print(lock_text(), end='')"],
        capture_output=True,
        text=True,
        check=True,
    )
    (base / DAMAGED_JOB / "run.lock").write_text(dead.stdout)
    return base


# -- the commands, in-process: each returns (exit status, what the user would read) ------------
def resume(case: Path, original: Path, damaged: Path) -> tuple[int, str]:
    from rnnlab.command_line import rewrite_command
    from rnnlab.run.resume import job_plan
    from rnnlab.run.train import resume_record

    run_dir = case / DAMAGED_JOB
    rewrite_command([f"resume={run_dir}"])
    plan = job_plan(run_dir.resolve(), in_sweep=False)
    resume_record(plan)  # what the run reads of its checkpoint before Lightning does
    return 0, ""


def sweep_resume(case: Path, original: Path, damaged: Path) -> tuple[int, str]:
    from rnnlab.command_line import rewrite_command
    from rnnlab.readback import read_yaml
    from rnnlab.run.resume import job_plan

    command = read_yaml(original / "sweep" / "sweep_command.yaml")["overrides"]  # as the user repeats it
    rewrite_command(["-m", *command, f"resume={case / 'sweep'}"])
    for job in JOBS:
        job_plan((case / "sweep" / job).resolve(), in_sweep=True)
    return 0, ""


def search_resume(case: Path, original: Path, damaged: Path) -> tuple[int, str]:
    """The search's command again, with resume= (the whole command: the sweeper reads the study)."""
    corpus = f"data.path={original / 'corpus.txt'}"
    done = call(
        "train.py",
        *SEARCH_ARGS,
        corpus,
        f"resume={case / 'search'}",
        cwd=case,
        capfd=None,
        RNNLAB_DATA_DIR=str(case / "data"),
    )
    return done.returncode, done.stderr if done.returncode else ""


def evaluation(case: Path, original: Path, damaged: Path) -> tuple[int, str]:
    """eval.py on the damaged job: it adds its entry to the job's eval.json."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        status = load_script("eval").main([f"run={case / DAMAGED_JOB}"])
    return status, stderr.getvalue()


def new_run(case: Path, original: Path, damaged: Path) -> tuple[int, str]:
    """What a new run on the same corpus does with the token cache: the datamodule's prepare and setup."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from rnnlab.readback import read_overrides
    from tests.project import CONF_DIR

    overrides = read_overrides(original / "sweep" / "model=gru" / ".hydra" / "overrides.yaml")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, "paths.output_dir=/nonexistent"])
    datamodule = instantiate(cfg.data)  # its data_dir is $RNNLAB_DATA_DIR: the case's copy
    datamodule.prepare_data()
    datamodule.setup("fit")
    return 0, ""


def compare(case: Path, original: Path, damaged: Path) -> tuple[int, str]:
    main = load_script("compare").main
    argv = [
        "compare.py",
        str(case / "sweep" / "model=gru"),
        str(case / DAMAGED_JOB),
        "--out",
        str(case / "cmp"),
    ]
    stderr = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stderr(stderr):
        patch.setattr(sys, "argv", argv)
        with contextlib.redirect_stdout(io.StringIO()):
            status = main()
    return status, stderr.getvalue()


def generate(case: Path, original: Path, damaged: Path) -> tuple[int, str]:
    main = load_script("generate").main
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        status = main([f"ckpt={damaged}", "length=5"])  # the user names the checkpoint
    return status, stderr.getvalue()


def tutorials(case: Path, original: Path, damaged: Path) -> tuple[int, str]:
    """The tutorials' table cell of a run (the script's exit status is its runs' own)."""
    cell = load_script("tutorials").summary(case / DAMAGED_JOB)
    said = cell.startswith(("unreadable:", "no metrics.json"))
    return (1 if said else 0), cell


COMMANDS: dict[str, Callable[[Path, Path, Path], tuple[int, str]]] = {
    "resume": resume,
    "sweep resume": sweep_resume,
    "search resume": search_resume,
    "eval": evaluation,
    "new run": new_run,
    "compare": compare,
    "generate": generate,
    "tutorials": tutorials,
}


def contents(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


def outcome(command: str, case: Path, original: Path, damaged: Path) -> tuple[str, str]:
    """RECOVERED or ONE_LINE, and the line; anything else (a traceback) fails the test."""
    warnings = io.StringIO()
    handler = logging.StreamHandler(warnings)
    handler.setLevel(logging.INFO)
    logger = logging.getLogger("rnnlab")
    logger.addHandler(handler)
    level, logger.level = logger.level, logging.INFO
    try:
        with contextlib.redirect_stderr(warnings):  # the warnings printed before Hydra starts
            status, said = COMMANDS[command](case, original, damaged)
    except UserError as error:  # what scripts/train.py prints as `error: ...` with exit 2
        status, said = 2, f"error: {error}"
    finally:
        logger.removeHandler(handler)
        logger.level = level
    # what the user reads: warnings, and the reason of a rebuild (not the cache's routine lines)
    told = [line for line in warnings.getvalue().splitlines() if not line.startswith("tokenising")]
    said = "\n".join([*told, said.strip()]).strip() if status == 0 else said.strip()
    if status == 0:
        return RECOVERED, said
    lines = [line for line in said.splitlines() if line.strip()]
    assert lines, f"{command}: exit {status} without a word"
    assert len(lines) == 1, f"{command}: more than one line: {said}"
    assert "Traceback" not in said
    return ONE_LINE, lines[-1]


CASES = [
    pytest.param(target, damage, command, id=f"{target.name}-{damage}-{command}")
    for target in FILES
    for damage in DAMAGE
    for command in target.readers
]


@pytest.mark.parametrize(("target", "damage", "command"), CASES)
def test_a_damaged_file_is_recovered_or_refused_in_one_line(
    finished, tmp_path, monkeypatch, capsys, target, damage, command
):
    case = tmp_path / "case"
    shutil.copytree(finished, case, symlinks=True)
    (path,) = sorted(case.glob(target.glob))[:1]
    DAMAGE[damage](path)
    before = contents(case)
    monkeypatch.setenv("RNNLAB_DATA_DIR", str(case / "data"))

    kind, said = outcome(command, case, finished, path)

    expected = (target.deleted or target.readers)[command] if damage == "deleted" else target.readers[command]
    assert kind == expected or expected == EITHER, f"{kind}: {said}"
    nothing_deleted(before, contents(case))
    with capsys.disabled():  # the matrix, for the record: pytest -s -k damaged
        print(f"\nMATRIX | {target.name} | {damage} | {command} | {kind} | {said[:200]}")


def nothing_deleted(before: dict[str, str], after: dict[str, str]) -> None:
    for name, digest in before.items():  # still there, or renamed aside with the same bytes
        aside = [a for a in after if re.fullmatch(re.escape(name) + r"\.damaged(-\d+)?", a)]
        assert name in after or any(after[a] == digest for a in aside), f"{name} was deleted"


# -- a resume past each damaged file it reads, through train.py's main: Hydra and Lightning to the end ----
RESUMED = [target for target in FILES if target.readers.get("resume") in (RECOVERED, EITHER)]


@pytest.mark.parametrize("target", RESUMED, ids=[target.name for target in RESUMED])
def test_a_resume_past_a_damaged_file_trains_to_the_end(finished, tmp_path, capfd, target):
    case = tmp_path / "case"
    shutil.copytree(finished, case, symlinks=True)
    run_dir = (case / DAMAGED_JOB).resolve()
    (path,) = sorted(case.glob(target.glob))[:1]
    garbage(path)
    before = contents(case)

    done = call(
        "train.py",
        f"resume={run_dir}",
        "trainer.max_epochs=2",
        cwd=case,
        capfd=capfd,
        RNNLAB_DATA_DIR=str(case / "data"),
    )

    assert done.returncode == 0, done.why()
    assert "Traceback" not in done.stdout + done.stderr, done.why()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["epochs"] == 2, metrics  # one epoch more
    assert metrics["resumes"][-1]["step"] > 0, metrics  # from a checkpoint, not from the start
    assert sorted(d.name for d in (case / "sweep").iterdir() if d.is_dir()) == sorted(JOBS)  # no new one
    nothing_deleted({k: v for k, v in before.items() if not k.endswith("run.lock")}, contents(case))


# -- once per kind of command, as a user runs it ---------------------------------------------------
def no_traceback(result: subprocess.CompletedProcess) -> str:
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output[-3000:]
    return output


def test_as_a_user_sees_it_resume_from_a_cut_last_checkpoint(finished, tmp_path):
    case = tmp_path / "case"
    shutil.copytree(finished, case)
    run_dir = (case / DAMAGED_JOB).resolve()
    cut_to_half(run_dir / "checkpoints" / "last.ckpt")
    garbage(run_dir / "metrics.json")
    result = script("train.py", f"resume={run_dir}", "trainer.max_epochs=2", cwd=case)
    output = no_traceback(result)
    assert result.returncode == 0, output[-3000:]
    assert re.search(
        r"unreadable: .*last\.ckpt: not a whole checkpoint .*; set aside as last\.ckpt\.damaged, "
        r"going back from best-epoch000.*\.ckpt \(step \d+\)",
        output,
    )
    assert "metrics.json: UnicodeDecodeError" in output
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["epochs"] == 2
    assert any(note.startswith("metrics.json was unreadable") for note in metrics["lost"])
    assert (run_dir / "metrics.json.damaged").is_file() and (
        run_dir / "checkpoints" / "last.ckpt.damaged"
    ).is_file()


@pytest.mark.parametrize(
    ("command", "damage", "status", "said"),
    [
        ("new run", "data/cache/*/meta.json", 0, "is out of date (meta.json is unreadable"),
        ("compare", f"{DAMAGED_JOB}/metrics.json", 0, "unreadable: "),
        ("generate", f"{DAMAGED_JOB}/checkpoints/last.ckpt", 2, "error: ckpt="),
        ("sweep resume", f"{DAMAGED_JOB}/metrics.json", 0, "resume: 1 resumed: model=rnn"),
    ],
)
def test_as_a_user_sees_it(finished, tmp_path, command, damage, status, said):
    case = tmp_path / "case"
    shutil.copytree(finished, case)
    (path,) = sorted(case.glob(damage))[:1]
    garbage(path)
    corpus = f"data.path={finished / 'corpus.txt'}"
    if command == "new run":
        result = script("train.py", *TINY, corpus, "data.max_tokens=2000", "debug=fdr", cwd=case)
    elif command == "compare":
        result = script("compare.py", str(case / "sweep"), cwd=case)
        assert "model=gru" in result.stdout and "1 runs in 1 rows (1 unreadable, left out)" in result.stdout
    elif command == "generate":
        result = script("generate.py", f"ckpt={path}", cwd=case)
        assert len(result.stderr.strip().splitlines()) == 1
    else:
        result = script("train.py", *SWEEP_ARGS, corpus, f"resume={case / 'sweep'}", cwd=case)
    output = no_traceback(result)
    assert result.returncode == status, output[-3000:]
    assert said in output, output[-3000:]
    if command == "sweep resume":  # the job whose metrics.json was garbage ran again, to its end
        assert json.loads((case / DAMAGED_JOB / "metrics.json").read_text())["status"] == "completed"
