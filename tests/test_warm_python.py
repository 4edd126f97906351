"""The warm Python (tests/warm_python.py) runs a script as a new interpreter would: the command-line
tests that fork from it prove what they would prove with `python SCRIPT`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.project import child_environment, new_output_file, run_command
from tests.warm_python import WarmPython

PROBE = """
import json, os, random, sys, time
import torch
if sys.argv[1] == "sleep":
    time.sleep(60)
print(json.dumps({
    "argv": sys.argv, "cwd": os.getcwd(), "name": __name__, "path0": sys.path[0],
    "variable": os.environ.get("PROBE_VARIABLE"), "threads": torch.get_num_threads(),
    "random": random.random(), "stdin": sys.stdin.read(), "session": os.getsid(0) == os.getpid(),
}))
print("to stderr", file=sys.stderr)
raise SystemExit(int(sys.argv[2]))
"""


@pytest.fixture
def probe(tmp_path: Path) -> Path:
    script = tmp_path / "scripts" / "probe.py"
    script.parent.mkdir()
    script.write_text(PROBE)
    return script


def probe_run(probe: Path, cwd: Path, fresh: bool, monkeypatch) -> tuple[dict, str, int]:
    monkeypatch.setenv("RNNLAB_TEST_FRESH_PYTHON", "1" if fresh else "0")
    env = child_environment(cwd, PROBE_VARIABLE="set for this child")
    done = run_command([sys.executable, str(probe), "print", "3"], cwd=cwd, timeout=120, env=env)
    return json.loads(done.stdout), done.stderr, done.returncode


def test_a_warm_child_sees_what_a_fresh_interpreter_sees(probe, tmp_path, monkeypatch):
    cwd = tmp_path / "work"
    cwd.mkdir()
    fresh, fresh_err, fresh_code = probe_run(probe, cwd, True, monkeypatch)
    warm, warm_err, warm_code = probe_run(probe, cwd, False, monkeypatch)
    again, _, _ = probe_run(probe, cwd, False, monkeypatch)

    assert (warm_code, warm_err) == (fresh_code, fresh_err) == (3, "to stderr\n")
    assert warm | {"random": None} == fresh | {"random": None}
    assert warm["name"] == "__main__" and warm["path0"] == str(probe.parent) and warm["session"]
    assert warm["random"] != again["random"]  # each child seeds its own, as each interpreter does


def test_a_warm_child_dies_of_the_signal_it_is_sent_and_a_timeout_kills_it(probe, tmp_path):
    warm = WarmPython(child_environment())
    output = new_output_file("probe")
    env = child_environment()
    child = warm.start([str(probe), "sleep", "0"], cwd=tmp_path, env=env, stdout=output, stderr=None)
    with pytest.raises(subprocess.TimeoutExpired):
        child.wait(timeout=0.5)
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=30) == -signal.SIGTERM
    warm.server.stdin.close()  # the server ends when its test process is done with it
    assert warm.server.wait(timeout=30) == 0


def test_a_child_whose_interpreter_settings_differ_starts_fresh(tmp_path):
    warm = WarmPython(child_environment())
    assert warm.can_run(child_environment())
    assert not warm.can_run(child_environment(PYTHONPATH=str(tmp_path)))
    assert not warm.can_run(child_environment(PYTHONWARNINGS="error"))
    warm.server.stdin.close()
    warm.server.wait(timeout=30)
