"""Shared test helpers: the config directory, small corpora the tests write, and a local HTTP server."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from rnnlab.run.console import WARNINGS_TO_IGNORE


def pytest_configure(config: pytest.Config) -> None:
    """The warnings a run filters (`rnnlab.run.console`), filtered in tests too: one list for both."""
    for message in WARNINGS_TO_IGNORE:
        config.addinivalue_line("filterwarnings", f"ignore:{message}")
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:tensorboard.*")


# A short text repeated many times: a model can learn it perfectly, so perplexity can approach 1.
PANGRAM = "the quick brown fox jumps over the lazy dog "


def write_repetitive_corpus(path: Path) -> Path:
    path.write_text((PANGRAM * 12 + "\n") * 40)
    return path


@pytest.fixture
def repetitive_corpus(tmp_path: Path) -> Path:
    return write_repetitive_corpus(tmp_path / "corpus.txt")


@pytest.fixture(autouse=True)
def empty_data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets an empty data directory of its own: the token caches that runs write, and any
    download, stay out of the user's ~/.cache/rnnlab."""
    folder = tmp_path_factory.mktemp("data-dir")
    monkeypatch.setenv("RNNLAB_DATA_DIR", str(folder))
    return folder


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty directory to run the CLI in (its cwd)."""
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Serves files from a folder on 127.0.0.1; yields (base URL, folder)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", folder
    finally:
        server.shutdown()
        server.server_close()
