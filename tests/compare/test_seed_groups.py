"""compare.py on run folders written by the test: seeds pooled as mean ± sd and n, sorting, tag
filtering, Markdown or CSV, the plots, and a folder with no runs."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rnnlab.compare.comparison import load_run
from rnnlab.compare.group_plots import mean_curve
from rnnlab.compare.seed_groups import group_rows, group_runs, markdown
from tests.project import ROOT


def fake_run(
    folder: Path, overrides: list[str], val_ppl: float, curve: list[float], tags: list[str] = ()
) -> Path:
    """A finished run as train.py leaves it, as far as compare.py reads it."""
    from torch.utils.tensorboard import SummaryWriter

    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    metrics = {
        "status": "completed",
        "monitor": "val/ppl",
        "monitor_mode": "min",
        "val_ppl": val_ppl,
        "test_ppl": val_ppl + 1,
        "tokens_per_s": 1000.0,
        "epochs": len(curve),
        "wall_time_s": 10.0,
        "tags": list(tags),
        "parameters": 1234,
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))
    writer = SummaryWriter(str(folder))
    for epoch, value in enumerate(curve):
        writer.add_scalar("val/ppl", value, epoch * 10)
        writer.add_scalar("epoch", epoch, epoch * 10)
        writer.add_scalar("epoch", epoch + 1, epoch * 10)  # Lightning: the next epoch, at the same step
    writer.close()
    return folder


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """model=gru over seeds 1-3 (val ppl 10, 12, 14), model=rnn over seeds 1-2 (20, 22), one lstm run."""
    root = tmp_path / "sweep"
    for seed, value in zip((1, 2, 3), (10.0, 12.0, 14.0), strict=True):
        fake_run(
            root / f"gru-{seed}",
            ["model=gru", f"seed={seed}", "trainer.max_epochs=3"],
            value,
            [value * 3, value * 2, value],
            tags=["baseline"],
        )
    for seed, value in zip((1, 2), (20.0, 22.0), strict=True):
        fake_run(
            root / f"rnn-{seed}",
            ["model=rnn", f"seed={seed}", "trainer.max_epochs=3"],
            value,
            [value * 2, value],
            tags=["baseline", "ablation"],
        )
    fake_run(root / "lstm", ["model=lstm", "trainer.max_epochs=3"], 5.0, [9.0, 7.0, 5.0])
    return root


def compare(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "compare.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def csv_rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open() as file:
        return {row["run"]: row for row in csv.DictReader(file)}


def test_seeds_pool_into_mean_sd_and_n_sorted_best_first(sweep, tmp_path):
    out = tmp_path / "out"
    result = compare(str(sweep), "--out", str(out))
    assert result.returncode == 0, result.stderr
    rows = csv_rows(out / "comparison.csv")
    assert list(rows) == ["model=lstm", "model=gru", "model=rnn"]  # by val_ppl, lowest first
    gru, rnn, lstm = rows["model=gru"], rows["model=rnn"], rows["model=lstm"]
    assert (gru["n"], rnn["n"], lstm["n"]) == ("3", "2", "1")
    assert float(gru["val_ppl"]) == pytest.approx(12.0) and float(gru["val_ppl_sd"]) == pytest.approx(2.0)
    assert float(rnn["test_ppl"]) == pytest.approx(22.0) and float(rnn["test_ppl_sd"]) == pytest.approx(
        2**0.5
    )
    assert float(lstm["val_ppl"]) == 5.0 and lstm["val_ppl_sd"] == ""  # one run: no sd
    table = (out / "comparison.md").read_text()
    assert "| model=gru | completed | 3 | 12.000 ± 2.000 | 13.000 ± 2.000 |" in table
    assert table == result.stdout.split(f"{6} runs in 3 rows")[0]
    assert (out / "val_ppl.png").stat().st_size > 5000 and (out / "val_ppl_final.png").stat().st_size > 5000


def test_sort_by_any_metric_filter_by_tag_and_print_csv(sweep, tmp_path):
    result = compare(
        str(sweep),
        "--out",
        str(tmp_path),
        "--tag",
        "baseline",
        "--metric",
        "val_ppl",
        "--descending",
        "--format",
        "csv",
    )
    assert result.returncode == 0, result.stderr
    printed = list(csv.DictReader(io.StringIO(result.stdout.rsplit("\n", 2)[0] + "\n")))
    assert [row["run"] for row in printed] == ["model=rnn", "model=gru"]  # no lstm: it has no tag
    only = compare(str(sweep), "--out", str(tmp_path), "--tag", "ablation")
    assert only.returncode == 0 and "model=gru" not in only.stdout and "| 2 | 21.000 ± 1.414 |" in only.stdout
    each = compare(str(sweep), "--out", str(tmp_path), "--each")
    assert each.returncode == 0 and "6 runs in 6 rows" in each.stdout


def test_a_seed_group_curve_is_the_mean_and_sd_of_its_runs_at_each_epoch(sweep):
    runs = [load_run(path) for path in sorted(sweep.glob("gru-*"))]
    (group,) = group_runs(runs)
    epochs, means, sds = mean_curve(group)
    assert epochs == [1, 2, 3]
    assert means == pytest.approx([36.0, 24.0, 12.0]) and sds == pytest.approx([6.0, 4.0, 2.0])


def test_a_folder_with_no_runs_is_one_line_and_exit_2(tmp_path):
    result = compare(str(tmp_path))
    assert result.returncode == 2
    assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1
    assert "no run directories" in result.stderr
    tagged = compare(str(tmp_path), "--tag", "x")
    assert tagged.returncode == 2


def test_eval_py_results_on_the_best_checkpoint_become_columns_pooled_over_seeds(tmp_path):
    """eval.json entries for the best checkpoint on the run's own splits are columns; another
    checkpoint's, or another text's, are not."""
    runs = []
    for seed, windowed in ((1, 1.6), (2, 1.8)):
        run = fake_run(tmp_path / f"s{seed}", ["data=tinyshakespeare", f"seed={seed}"], 5.0, [6.0, 5.0])
        metrics = json.loads((run / "metrics.json").read_text())
        best = str(run / "checkpoints" / "best-epoch001.ckpt")
        (run / "metrics.json").write_text(json.dumps({**metrics, "best_checkpoint": best}))
        entries = {
            "a": {
                "checkpoint": best,
                "split": "val",
                "eval_mode": "windowed",
                "eval_window": 64,
                "val_loss": windowed,
            },
            "b": {
                "checkpoint": best,
                "split": "val",
                "eval_mode": "stream",
                "batch_size": 1,
                "val_loss": 1.5,
            },
            "c": {
                "checkpoint": best,
                "split": "/elsewhere/other.txt",
                "eval_mode": "stream",
                "val_loss": 9.0,
            },
            "d": {
                "checkpoint": str(run / "checkpoints" / "last.ckpt"),
                "split": "val",
                "eval_mode": "windowed",
                "eval_window": 64,
                "val_loss": 9.0,
            },
        }
        (run / "checkpoints").mkdir()
        (run / "checkpoints" / "eval.json").write_text(json.dumps(entries))
        runs.append(load_run(run))
    assert {k: v for k, v in runs[0].metrics.items() if k.startswith("val_loss")} == {
        "val_loss_windowed64": 1.6,
        "val_loss_stream_b1": 1.5,
    }
    (group,) = group_runs(runs)
    rows = group_rows([group], ("val_loss_windowed64",))
    assert rows[0]["val_loss_windowed64"] == pytest.approx(1.7)
    assert rows[0]["val_loss_windowed64_sd"] == pytest.approx(0.02**0.5)  # sample sd of 1.6 and 1.8


def test_an_sd_is_written_to_the_precision_of_its_mean():
    row = {
        "run": "lstm",
        "val_ppl": 3.978,
        "val_ppl_sd": 0.0231,
        "tokens_per_s": 6837.4,
        "tokens_per_s_sd": 173.132,
    }
    assert "| lstm | 3.978 ± 0.023 | 6,837 ± 173 |" in markdown([row])
