"""A PostgreSQL server for the tests, started by `cluster/postgres.sh` (the command a user runs):
`postgres_server` (session-scoped: one server, stopped at the end) and `postgres_url` (a new, empty
database on it for each test, so that every test meets a study whose tables do not exist yet).

Without the server binaries (or, as root, without a postgres user) the tests that need it skip and
say why; under CI=true that is a failure. Importable from other test folders (tests/conftest.py
makes both fixtures available to the whole suite).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.project import ROOT

SCRIPT = ROOT / "cluster" / "postgres.sh"
NOT_INSTALLED = 3  # postgres.sh's exit status when it cannot run a server here


def unavailable(reason: str) -> None:
    """Skip, or fail under CI, where every test must run."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: this test must run)", pytrace=False)
    pytest.skip(reason)


@dataclass
class PostgresServer:
    state_dir: Path
    url: str  # postgresql://postgres@127.0.0.1:PORT/optuna
    start_seconds: float

    def database_url(self, name: str) -> str:
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def create_database(self) -> str:
        """A new empty database; its URL."""
        import psycopg

        name = f"study_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url, autocommit=True) as db:
            db.execute(f"CREATE DATABASE {name}")
        return self.database_url(name)


def start_postgres(state_dir: Path) -> PostgresServer:
    """`bash cluster/postgres.sh start STATE_DIR`; skips (fails under CI) where it cannot run."""
    started = time.monotonic()
    result = subprocess.run(
        ["bash", str(SCRIPT), "start", str(state_dir)], capture_output=True, text=True, timeout=120
    )
    if result.returncode == NOT_INSTALLED:
        unavailable(f"no PostgreSQL server here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stdout + result.stderr
    return PostgresServer(state_dir, result.stdout.strip().splitlines()[-1], time.monotonic() - started)


def stop_postgres(server: PostgresServer) -> None:
    subprocess.run(["bash", str(SCRIPT), "stop", str(server.state_dir)], check=True, timeout=120)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    # Under /tmp rather than pytest's temp folder: run as root, the server runs as the postgres
    # user, who cannot enter pytest's folders (mode 700, root's).
    state_dir = Path(tempfile.mkdtemp(prefix="rnnlab-postgres-"))
    try:
        server = start_postgres(state_dir)
        try:
            yield server
        finally:
            stop_postgres(server)
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    pytest.importorskip("psycopg", reason='the sweep extra is not installed: pip install -e ".[sweep]"')
    return postgres_server.create_database()
