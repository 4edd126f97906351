"""`sbatch cluster/ddp.sbatch` on a live SLURM cluster: two tasks that srun starts train one run in one
folder they name alike (no hydra.run.dir typed), reach the validation perplexity of one process with
the same global batch, and print no `sync_dist` warning."""

from __future__ import annotations

import json
import random
import string
from pathlib import Path

import pytest

from tests.cluster.conftest import Cluster
from tests.cluster.test_preemption import user_folder
from tests.project import DISTRIBUTED_RUN, ROOT, call

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("slurm_cluster")]


def test_two_srun_tasks_train_one_run_in_one_folder_and_match_one_process(
    on_cluster: Cluster, tmp_path: Path, monkeypatch, capfd
):
    corpus = tmp_path / "random.txt"
    corpus.write_text("".join(random.Random(0).choices(string.ascii_lowercase + " ", k=12000)))
    work = user_folder(tmp_path / "work")
    monkeypatch.setenv("RNNLAB_OUTPUT_DIR", "outputs")  # runs go where a user's would: outputs/ in its folder
    sbatch = ["sbatch", "--parsable", f"--chdir={work}", str(ROOT / "cluster" / "ddp.sbatch")]
    job = on_cluster.command(*sbatch, *DISTRIBUTED_RUN, f"data.path={corpus}").strip()
    one = call(  # the one-process run: train.py's main here, while the job runs
        "train.py",
        *DISTRIBUTED_RUN,
        f"data.path={corpus}",
        f"hydra.run.dir={tmp_path / 'one'}",
        cwd=tmp_path,
        capfd=capfd,
    )
    assert one.returncode == 0, one.why()
    on_cluster.wait_until_done(job, timeout=300)

    output = (work / f"slurm-{job}.out").read_text()
    (run_dir,) = (work / "outputs").iterdir()  # one folder for both tasks
    assert run_dir.name == f"slurm-{job}.0", output[-3000:]
    two = json.loads((run_dir / "metrics.json").read_text())
    single = json.loads((tmp_path / "one" / "metrics.json").read_text())
    assert two["status"] == "completed", output[-3000:]
    assert two["val_ppl"] == pytest.approx(single["val_ppl"], rel=1e-4)
    assert two["test_ppl"] == pytest.approx(single["test_ppl"], rel=1e-4)
    assert sorted(p.name for p in run_dir.glob("*.log")) == ["train.log", "train_ddp_process_1.log"]
    log = (run_dir / "train.log").read_text()
    assert "MEMBER: 1/2" in log and "MEMBER: 2/2" in (run_dir / "train_ddp_process_1.log").read_text()
    assert "sync_dist" not in output + log
    assert "SLURM auto-requeueing enabled" not in log
    writers = {p.name.split(".")[-2] for p in run_dir.glob("events.out.tfevents.*")}
    assert len(writers) == 1  # one process wrote the TensorBoard run
    print(
        f"job {job}: 2 srun tasks in {run_dir.name}: val ppl {two['val_ppl']!r}, test ppl {two['test_ppl']!r}"
    )
    print(f"1 process: val ppl {single['val_ppl']!r}, test ppl {single['test_ppl']!r}")
