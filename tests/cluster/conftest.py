"""A one-node SLURM cluster for the tests that run rnnlab's cluster recipes: started once per session by
`cluster/local.sh` (the command the docs give users) in a temp folder, and stopped at the end.

Without root or Debian's `slurm-wlm` and `munge` packages these tests skip and say why; under CI
(`CI=true`, where .ci/run installs the packages) that is a failure instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.project import ROOT, Child, stop_group

LOCAL_CLUSTER = ROOT / "cluster" / "local.sh"
PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "scancel", "scontrol")


def why_no_cluster() -> str | None:
    """Why a local cluster cannot start here, or None."""
    if os.geteuid() != 0:
        return "the local SLURM cluster needs root (slurmctld and slurmd run as root)"
    missing = [program for program in PROGRAMS if shutil.which(program) is None]
    if missing:
        return f"{', '.join(missing)} not installed (apt-get install slurm-wlm munge)"
    return None


@dataclass
class Cluster:
    """A running one-node cluster: its state folder and its slurm.conf (the clients read $SLURM_CONF)."""

    state: Path

    @property
    def conf(self) -> Path:
        return self.state / "slurm.conf"

    def command(self, *args: str, timeout: float = 60) -> str:
        """A SLURM client command (sbatch, squeue, scancel, scontrol) on this cluster; its stdout."""
        env = {**os.environ, "SLURM_CONF": str(self.conf)}
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, f"{' '.join(args)}: exit {done.returncode}: {done.stderr}"
        return done.stdout

    def jobs(self) -> list[str]:
        """The ids of the jobs still known to the cluster (pending, running or completing)."""
        return self.command("squeue", "-h", "-o", "%i").split()

    def queued(self, job: str) -> bool:
        return any(j == job or j.startswith(f"{job}_") for j in self.jobs())

    def wait_until_done(self, job: str, timeout: float) -> None:
        """Wait until `job` has left the queue (finished, failed or cancelled)."""
        deadline = time.monotonic() + timeout
        while self.queued(job):
            if time.monotonic() > deadline:
                self.command("scancel", job)
                raise AssertionError(f"job {job} still queued after {timeout} s; cancelled")
            time.sleep(0.5)

    def wait_for(
        self, condition: Callable[[], bool], job: str, timeout: float, what: str, output: Path
    ) -> None:
        """Poll `condition` while `job` runs; the job leaving the queue first, or the deadline passing,
        fails the test (the job is cancelled), naming `what` and the end of the job's `output`."""
        deadline = time.monotonic() + timeout
        checked = time.monotonic()
        while not condition():
            now = time.monotonic()
            if now > deadline or (now - checked > 1 and not self.queued(job)):
                self.command("scancel", job)
                ending = output.read_text(errors="replace")[-3000:] if output.exists() else "(no output)"
                raise AssertionError(f"job {job} ended or ran {timeout} s before {what}; it wrote:\n{ending}")
            if now - checked > 1:
                checked = now
            time.sleep(0.02)

    def log(self) -> str:
        """slurmctld's log, for failure messages."""
        return (self.state / "log" / "slurmctld.log").read_text(errors="replace")[-3000:]


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[Cluster]:
    """One cluster for the session (the cluster tests share an xdist group, so one worker runs them all)."""
    reason = why_no_cluster()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the SLURM cluster tests cannot run in CI: {reason}")
        pytest.skip(reason)
    # Under /tmp rather than pytest's temp folders, which only root may enter: munged runs as `munge`.
    state = Path(tempfile.mkdtemp(prefix="rnnlab-slurm-"))
    started = subprocess.run(
        ["bash", str(LOCAL_CLUSTER), "start", str(state)], capture_output=True, text=True, timeout=120
    )
    try:
        assert started.returncode == 0, f"cluster/local.sh start failed: {started.stdout}{started.stderr}"
        yield Cluster(state)
    finally:
        subprocess.run(["bash", str(LOCAL_CLUSTER), "stop", str(state)], capture_output=True, timeout=120)
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def on_cluster(slurm_cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    """The cluster, its slurm.conf in this test's environment (its children submit jobs there), and
    one thread per process, in the jobs and in the processes they are compared with (a run in this
    process keeps the thread count it has). Jobs the test leaves behind are cancelled at its end."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    # a job script's `python` is this one (the environment is the submitter's)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    yield slurm_cluster
    left = slurm_cluster.jobs()
    if left:
        slurm_cluster.command("scancel", *left)


def stop_child(child: Child) -> None:
    """Kill a child a test started (a submitting process), if it is still running."""
    if child.process.poll() is None:
        stop_group(child.process)
