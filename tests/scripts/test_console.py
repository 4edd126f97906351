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
from pathlib import Path

import pytest

from tests.project import ROOT, TINY, child_environment, new_output_file, read_terminal

pytestmark = pytest.mark.slow  # CLI subprocesses: `pytest -m "not slow"` leaves them out

COLUMNS, ROWS = 160, 50
LOG_LINE = re.compile(r"\[\d\d:\d\d:\d\d\] ")


def run_in_terminal(*args: str, cwd, timeout: float = 300) -> tuple[int, list[str], Path]:
    """Run train.py with a pseudo-terminal as its stdin, stdout and stderr; return its exit status and
    the screen's lines after the run (a tall screen, so that nothing scrolls away), and the file that
    holds the raw output. The terminal is read for at most `timeout` seconds."""
    import pyte

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    env = child_environment(cwd, TERM="xterm", COLUMNS=str(COLUMNS))
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "train.py"), *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=cwd,
        env=env,
        close_fds=True,
        start_new_session=True,
    )
    os.close(slave)
    try:
        output = read_terminal(master, process, timeout)
    finally:
        os.close(master)
    status = process.wait(timeout=60)
    kept = new_output_file("terminal")  # the raw bytes, for a failure message
    kept.write_bytes(output)
    screen = pyte.Screen(COLUMNS, 2000)
    pyte.ByteStream(screen).feed(output)
    return status, [line.rstrip() for line in screen.display if line.strip()], kept


def test_log_lines_start_their_own_line_and_the_bar_counts_epochs_as_they_do(workdir, repetitive_corpus):
    status, lines, raw = run_in_terminal(
        *TINY,
        f"data.path={repetitive_corpus}",
        "data.max_tokens=6000",
        "trainer.max_epochs=2",
        "callbacks.progress.refresh_rate=1",
        cwd=workdir,
    )
    assert status == 0, f"exit {status}; raw output in {raw}; the screen ends:\n" + "\n".join(lines[-30:])
    logged = [line for line in lines if LOG_LINE.search(line)]
    assert len(logged) >= 6, f"raw output in {raw}:\n" + "\n".join(lines)
    for line in logged:  # every log line starts at column 0 and holds one log record
        assert LOG_LINE.match(line) and len(LOG_LINE.findall(line)) == 1, line
    assert any("epoch 1 sample:" in line for line in logged) and any("epoch 2/2" in line for line in logged)
    bars = [line for line in lines if "it/s" in line or "s/it" in line]
    assert any(line.startswith("Epoch 2/2") for line in bars) and not any("Epoch 0" in line for line in bars)
    # the last frame shows the summary
    assert "done: best val ppl" in lines[-3] and lines[-1].endswith(tuple(str(d) for d in range(10)))
