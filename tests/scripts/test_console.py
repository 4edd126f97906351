"""What a person sees in a terminal: train.py under a pseudo-terminal, its screen rendered by pyte."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios

import pytest

from tests.project import ROOT
from tests.scripts.test_train import TINY

pytestmark = pytest.mark.slow  # CLI subprocesses: `pytest -m "not slow"` leaves them out

COLUMNS, ROWS = 160, 50
LOG_LINE = re.compile(r"\[\d\d:\d\d:\d\d\] ")


def run_in_terminal(*args: str, cwd, timeout: float = 300) -> tuple[int, list[str]]:
    """Run train.py with a pseudo-terminal as its stdin, stdout and stderr; return its exit status and
    the screen's lines after the run (a tall screen, so that nothing scrolls away)."""
    import pyte

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RNNLAB_", "HYDRA_"))}
    env.update(RNNLAB_DATA_DIR=str(cwd.parent / "no-data-here"), TERM="xterm", COLUMNS=str(COLUMNS))
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "train.py"), *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=cwd,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    output = bytearray()
    while True:
        try:
            chunk = os.read(master, 1 << 16)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(master)
    status = process.wait(timeout=timeout)
    screen = pyte.Screen(COLUMNS, 2000)
    pyte.ByteStream(screen).feed(bytes(output))
    return status, [line.rstrip() for line in screen.display if line.strip()]


def test_log_lines_start_their_own_line_and_the_bar_counts_epochs_as_they_do(workdir, repetitive_corpus):
    status, lines = run_in_terminal(
        *TINY,
        f"data.path={repetitive_corpus}",
        "data.max_tokens=6000",
        "trainer.max_epochs=2",
        "callbacks.progress.refresh_rate=1",
        cwd=workdir,
    )
    assert status == 0, "\n".join(lines[-30:])
    logged = [line for line in lines if LOG_LINE.search(line)]
    assert len(logged) >= 6, "\n".join(lines)
    for line in logged:  # every log line starts at column 0 and holds one log record
        assert LOG_LINE.match(line) and len(LOG_LINE.findall(line)) == 1, line
    assert any("epoch 1 sample:" in line for line in logged) and any("epoch 2/2" in line for line in logged)
    bars = [line for line in lines if "it/s" in line or "s/it" in line]
    assert any(line.startswith("Epoch 2/2") for line in bars) and not any("Epoch 0" in line for line in bars)
    # the last frame shows the summary
    assert "done: best val ppl" in lines[-3] and lines[-1].endswith(tuple(str(d) for d in range(10)))
