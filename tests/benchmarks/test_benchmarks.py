"""The benchmark scripts run end to end on a tiny corpus and print tables of positive numbers: each one's
main called in this process (the processes it starts to measure are real ones), except plain_loop.py,
whose imports are the point, run as a user starts it."""

from __future__ import annotations

import random
import re
import sys
from pathlib import Path

import pytest

from tests.project import ROOT, call_benchmark, child_environment, load_benchmark, run_command

pytestmark = pytest.mark.slow  # subprocesses that train: `pytest -m "not slow"` leaves them out

TEXT = (
    "the time traveller for so it will be convenient to speak of him was expounding a recondite matter to us"
)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """About 20 KB of text named like the real corpus (its SHA-1 differs, so it is passed as data.path)."""
    rng, words = random.Random(0), TEXT.split()
    lines = [" ".join(rng.choices(words, k=12)) for _ in range(330)]
    path = tmp_path / "data" / "timemachine.txt"
    path.parent.mkdir()
    path.write_text("\n".join(lines) + "\n")
    return path


def run(script: str, corpus: Path, out: Path, *options: str, capfd) -> str:
    """The benchmark's main in this process (what it starts, it starts as processes), on the corpus."""
    options = (*options, f"--data-path={corpus}", f"--out={out}")
    # RNNLAB_DATA_DIR: the benchmark and its children never read or download the real corpus
    result = call_benchmark(script, *options, capfd=capfd, RNNLAB_DATA_DIR=str(corpus.parent))
    assert result.returncode == 0, result.why()
    assert out.read_text() in result.stdout  # the table printed is the table written
    return out.read_text()


def numbers(row: str) -> list[float]:
    """The numeric cells of a Markdown table row (the first number of a cell like `2.51 (0.96 x import)`)."""
    cells = row.strip("|").split("|")[1:]
    return [float(m.group().replace(",", "")) for cell in cells if (m := re.match(r"\s*[\d,.]+", cell))]


def row(table: str, first_cell: str) -> list[float]:
    """The numbers of the first row that starts with this cell."""
    return numbers(next(line for line in table.splitlines() if line.startswith(f"| {first_cell} |")))


def test_throughput(corpus, tmp_path, capfd):
    out = tmp_path / "throughput.md"
    options = "--models rnn --steps 8 --warmup 2 --repeats 1 --device cpu --batch-sizes 8,16,4096"
    options += " --windows-per-batch 2"
    table = run("throughput.py", corpus, out, *options.split(), capfd=capfd)
    rnn = row(table, "rnn")  # hidden, plain, rnnlab, ratio, one window per batch, ratio, bare ratio
    assert rnn[0] == 256  # conf/model/rnn.yaml's size
    assert len(rnn) == 7 and all(x > 0 for x in rnn)
    assert "| rnn | 8 |" in table and "| rnn | 16 |" in table
    assert all(
        numbers(line)[-1] > 0
        for line in table.splitlines()
        if line.startswith(("| rnn | 8 |", "| rnn | 16 |"))
    )
    assert "| rnn | 4096 | n/a: " in table  # more rows than the corpus has: said, not a crash
    assert "windows per loader batch: 2" in table
    assert re.search(r"both hidden 512, plain loop: [\d,]+ vs [\d,]+ tokens/s", table)


def test_startup(corpus, tmp_path, capfd):
    table = run("startup.py", corpus, tmp_path / "startup.md", "--repeats", "1", capfd=capfd)
    for first in (
        "`train.py --cfg job`",
        "`python -c 'import lightning'`",
        "process start to first optimiser step",
    ):
        (seconds,) = row(table, first)[:1]
        assert seconds > 0


def test_memory(corpus, tmp_path, capfd):
    table = run("memory.py", corpus, tmp_path / "memory.md", "--models", "rnn", "--steps", "3", capfd=capfd)
    ours, plain, ratio = row(table, "rnn")
    assert ours > 0 and plain > 0 and ratio > 0


def test_plain_loop_never_imports_lightning_or_hydra(corpus):
    command = [sys.executable, "-X", "importtime", "benchmarks/plain_loop.py", "--hidden-size=16"]
    options = ["--batch-size=4", "--steps=4", "--warmup=1", f"--data-path={corpus}"]
    result = run_command([*command, *options], cwd=ROOT, env=child_environment(), timeout=120)
    assert result.returncode == 0, result.why()
    assert "tokens/s" in result.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "torch" in imported
    assert not {name.split(".")[0] for name in imported} & {
        "lightning",
        "pytorch_lightning",
        "hydra",
        "omegaconf",
    }


def test_corpus(tmp_path, capfd):
    """benchmarks/corpus.py on a 1 MB corpus it generates (and deletes), DDP part included. Its start-up
    part is left out: it times benchmarks/common.py's first_step_seconds, which test_startup runs, and
    the memory part runs it too (to warm the cache)."""
    out = tmp_path / "corpus.md"
    options = ["--sizes", "1", "--steps", "5", "--skip", "startup", f"--out={out}"]
    result = call_benchmark("corpus.py", *options, capfd=capfd)
    assert result.returncode == 0, result.why()
    table = out.read_text()
    for kind in ("char (raw)", "char (d2l)", "byte (raw)", "word (raw)"):
        assert row(table, kind)[0] > 0  # MB/s
    assert "first optimiser step" not in table
    assert row(table, "The Time Machine")[0] > 100 and row(table, "1 MB")[0] > 100  # peak RSS, MB
    assert "exit 0, cache built 1 time(s)" in table


def test_quality_writes_val_loss_against_time_and_characters(corpus, tmp_path, capfd):
    out = tmp_path / "quality"
    options = ["--minutes=0.05", "--val-every=16", f"--out={out}"]
    tiny = [
        "data=text",
        f"data.path={corpus}",
        "data.batch_size=4",
        "data.num_steps=10",
        "model.hidden_size=16",
    ]
    options += [f"--set={s}" for s in tiny]
    result = call_benchmark("quality.py", *options, capfd=capfd, RNNLAB_DATA_DIR=str(corpus.parent))
    assert result.returncode == 0, result.why()
    rows = out.with_suffix(".csv").read_text().splitlines()
    assert rows[0] == "experiment,seed,seconds,characters,step,val_loss" and len(rows) >= 2
    for row in rows[1:]:
        _, _, seconds, characters, step, loss = row.split(",")
        assert float(seconds) > 0 and int(characters) == int(step) * 40 and float(loss) > 0
    assert out.with_suffix(".png").stat().st_size > 10_000


def test_quality_draws_finished_runs_as_they_are(corpus, tmp_path, capsys):
    """`--runs`: the curves of runs that already finished (each epoch's validation), not new training."""
    from omegaconf import OmegaConf

    from rnnlab.run.train import train
    from tests.project import compose_train

    run_dir = tmp_path / "run"
    overrides = ["data=text", f"data.path={corpus}", "data.batch_size=4", "data.num_steps=10"]
    overrides += ["model.hidden_size=16", "trainer.max_epochs=2", "test=false", "seed=5"]
    cfg = compose_train(*overrides, output_dir=str(run_dir))
    train(cfg)
    (run_dir / ".hydra").mkdir()  # as Hydra writes them for a run of train.py
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.create(overrides), run_dir / ".hydra" / "overrides.yaml")

    quality = load_benchmark("quality")
    assert quality.main(["--runs", str(run_dir), f"--out={tmp_path / 'q'}"]) == 0
    rows = (tmp_path / "q.csv").read_text().splitlines()[1:]
    assert len(rows) == 2  # one point per epoch's validation
    assert all(row.startswith("default,5,") for row in rows)
    steps = [int(row.split(",")[4]) for row in rows]
    assert steps[1] == 2 * steps[0] > 0
    assert quality.main(["--runs", str(tmp_path), f"--out={tmp_path / 'q2'}"]) == 2
    assert "is not a run folder" in capsys.readouterr().err
    # a label of one's own (runs of one experiment that differ in other overrides), one per run
    assert quality.main(["--runs", str(run_dir), "--labels", "wider", f"--out={tmp_path / 'q3'}"]) == 0
    assert [row.split(",")[:2] for row in (tmp_path / "q3.csv").read_text().splitlines()[1:]] == [
        ["wider", "5"]
    ] * 2
    assert quality.main(["--runs", str(run_dir), "--labels", "a,b", f"--out={tmp_path / 'q4'}"]) == 2
    assert "give one label per --runs folder" in capsys.readouterr().err
    assert not (tmp_path / "q4.csv").exists()


def test_cpu_fast_path(corpus, tmp_path, capfd):
    """One preset (a LayerStack LSTM with weight dropout and a token shift, made tiny): the oneDNN
    table in float32 and bf16, the settings and one cell of the batch-by-window table."""
    tiny = ["model.hidden_size=16", "model.embedding_dim=8", "data.batch_size=4", "data.num_steps=10"]
    tiny += ["model.token_shift=true"]  # its state is (the LSTM's state, the last input): carried too
    options = ["--presets=timemachine_best", "--grid-preset=timemachine_best", "--seconds=0.2"]
    options += ["--warmup=1", "--batch-sizes=4", "--windows=8", *(f"--set={s}" for s in tiny)]
    table = run("cpu_fast_path.py", corpus, tmp_path / "cpu_fast_path.md", *options, capfd=capfd)
    cases = [("0", "32-true"), ("0.234", "32-true"), ("0.234", "bf16-mixed")]  # the preset's own dropout
    for weight_dropout, precision in cases:
        start = f"| timemachine_best | {weight_dropout} | {precision} |"
        line = next(x for x in table.splitlines() if x.startswith(start))
        assert "| yes / yes |" in line, line  # every training layer call ran oneDNN forward and backward
        calls, forward, backward, inference, _, implementation, built = line.strip("|").split("|")[3:]
        train_calls, eval_calls = map(int, calls.split("/"))
        forward, backward, inference = int(forward), int(backward), int(inference)
        built = int(built.split()[0])  # `5 (2.9)`: primitives created (their milliseconds)
        assert train_calls > 0 and forward == backward == train_calls and inference == eval_calls > 0
        assert built >= 3  # a training, a backward and an evaluation shape at least
        # the kernel oneDNN ran for each kind (`ref`, `brgemm:avx512_core`, ...): none left unnamed
        assert all(name.strip() not in ("", "-") for name in implementation.split(" / ")), line
    settings = [x for x in table.splitlines() if x.startswith("| timemachine_best | ") and "/ " not in x]
    names = [x.split("|")[2].strip() for x in settings]
    assert names[:3] == [
        "as configured",
        "weight dropout off",
        "two window lengths in turn",
    ]
    # the other thread count than the run's own: 1 where torch takes 2 or more, 2 on one core
    assert re.fullmatch(r"[12] intra-op thread\(s\)", names[3]), names[3]
    assert names[4] == "bf16 autocast"
    assert re.fullmatch(r"denormals flushed \(fresh processes: [\d,]+ vs [\d,]+ not\)", names[5]), names[5]
    assert all(numbers(x)[0] > 0 for x in settings) and numbers(settings[0])[1] == 1.0
    assert "| batch | window 8 |" in table and row(table, "4")[0] > 0
