"""A Python that has already imported torch, Lightning, Hydra and rnnlab, and forks a child for each
command the tests run. Each child is a process of its own, as `python scripts/X.py ARGS` would be:
its own argv, working directory, environment, output files, session, signals and exit status. What it
skips is the interpreter's start and the imports (3-5 s of CPU per command on 2 cores), which the
~100 command-line tests would otherwise pay each.

`RNNLAB_TEST_FRESH_PYTHON=1` runs every command in a fresh interpreter instead; tests whose point is
the start itself (a pseudo-terminal, `-X importtime`, several ranks) always start one.

The server reads one JSON request a line on stdin and answers on stdout with `{"pid": N}` when it
forked, and `{"exited": N, "returncode": R}` when that child ended (R as `Popen.returncode` gives it).
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

# What a run of any script imports, loaded once here so that every fork has it. Nothing is run: no
# thread pool is started, no logging or Hydra state is set up, so a fork starts as clean as a new
# interpreter would after its imports.
PRELOADED = (
    "torch",
    "lightning.pytorch",
    "torchmetrics",
    "hydra",
    "omegaconf",
    "tensorboard.compat.proto.summary_pb2",
    "rnnlab.run.train",
    "rnnlab.run.evaluate",
    "rnnlab.generation",
)


# -- the server (a process of its own) --------------------------------------------------------------
def serve() -> None:
    import importlib

    before = dict(os.environ)
    for name in PRELOADED:
        importlib.import_module(name)
    # What the imports set in the environment (Lightning sets a CUDA check variable), which a child's own
    # environment must keep, as it would after importing them itself.
    set_by_imports = {k: v for k, v in os.environ.items() if before.get(k) != v}
    respond({"ready": True})
    pending = b""
    while True:
        reap()
        ready, _, _ = select.select([0], [], [], 0.02)
        if not ready:
            continue
        chunk = os.read(0, 1 << 16)
        if not chunk:  # the test process closed the pipe: it is done with us
            return
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            request = json.loads(line)
            pid = os.fork()
            if pid == 0:
                run_child(request, set_by_imports)  # never returns
            respond({"pid": pid})


def respond(message: dict) -> None:
    os.write(1, (json.dumps(message) + "\n").encode())


def reap() -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        respond({"exited": pid, "returncode": os.waitstatus_to_exitcode(status)})


def run_child(request: dict, set_by_imports: dict[str, str]) -> None:
    """In the fork: become `python SCRIPT ARGS` in the request's folder, environment and files."""
    import random
    import runpy

    os.setsid()
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ.update(set_by_imports)
    stdin = os.open(os.devnull, os.O_RDONLY)
    stdout = os.open(request["stdout"], os.O_WRONLY | os.O_APPEND)
    stderr = stdout if request["stderr"] is None else os.open(request["stderr"], os.O_WRONLY | os.O_APPEND)
    for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
        os.dup2(fd, target)
    for fd in {stdin, stdout, stderr}:
        os.close(fd)
    random.seed()  # a new interpreter seeds from the OS; a fork would repeat the server's sequence
    if "OMP_NUM_THREADS" in os.environ:  # read by torch's thread pool when the server imported it
        import torch

        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    script = request["argv"][0]
    sys.argv = list(request["argv"])
    sys.path[0] = str(Path(script).resolve().parent)  # what `python SCRIPT` puts first
    try:
        runpy.run_path(script, run_name="__main__")
    except KeyboardInterrupt:  # as a new interpreter ends on an uncaught Ctrl-C: killed by SIGINT
        sys.stdout.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    sys.exit(0)  # SystemExit (the script's own, or this one) unwinds to the interpreter's normal end


def interpreter_settings(env: dict[str, str]) -> dict[str, str]:
    """The variables a Python reads as it starts (PYTHONPATH, PYTHONUNBUFFERED, PYTHONWARNINGS...)."""
    return {k: v for k, v in env.items() if k.startswith("PYTHON")}


# -- the test side ------------------------------------------------------------------------------------
class WarmProcess:
    """A forked child, with the part of `subprocess.Popen` that the tests use."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self.ended = threading.Event()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self.ended.wait(timeout):
            raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class WarmPython:
    """One server per test process, started on first use with that moment's environment."""

    def __init__(self, env: dict[str, str]) -> None:
        self.server = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve())],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,  # a Ctrl-C to pytest is not its business
        )
        self.started_with = interpreter_settings(env)
        self.lock = threading.Lock()
        self.children: dict[int, WarmProcess] = {}
        self.forked: list[int] = []
        self.answered = threading.Condition()
        first = self.server.stdout.readline()
        if json.loads(first or b"{}").get("ready") is not True:
            raise RuntimeError(f"the warm Python did not start (exit {self.server.wait()})")
        threading.Thread(target=self.listen, daemon=True).start()

    def listen(self) -> None:
        for line in self.server.stdout:
            message = json.loads(line)
            with self.answered:
                if "pid" in message:
                    self.children[message["pid"]] = WarmProcess(message["pid"])
                    self.forked.append(message["pid"])
                else:
                    child = self.children.setdefault(message["exited"], WarmProcess(message["exited"]))
                    child.returncode = message["returncode"]
                    child.ended.set()
                self.answered.notify_all()

    def can_run(self, env: dict[str, str]) -> bool:
        """Whether a command with `env` would start as the server did (else it needs a fresh Python)."""
        return interpreter_settings(env) == self.started_with

    def start(self, argv: list[str], *, cwd: Path, env: dict[str, str], stdout: Path, stderr: Path | None):
        request = {"argv": argv, "cwd": str(cwd), "env": env, "stdout": str(stdout), "stderr": stderr}
        if stderr is not None:
            request["stderr"] = str(stderr)
        with self.lock, self.answered:
            before = len(self.forked)
            self.server.stdin.write((json.dumps(request) + "\n").encode())
            self.server.stdin.flush()
            deadline = time.monotonic() + 60
            while len(self.forked) == before:
                if self.server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the warm Python did not fork (status {self.server.poll()})")
                self.answered.wait(1)
            return self.children[self.forked[-1]]


if __name__ == "__main__":
    serve()
