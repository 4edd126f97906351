"""Every test runs in temp dirs of its own (HOME, the data and output directories, the working
directory); its HOME must be empty when it ends (unless it is marked `writes_home`), and the whole run
fails if the suite leaves a file in the repository, the real ~/.cache or the real ~/.config. Under
CI=true a skipped test fails, unless it skipped for want of a CUDA device (tests/ci_skips.py).
Fixtures tests share: corpora they write, a working directory, a local HTTP server."""

from __future__ import annotations

import functools
import http.server
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import tests.project as project
from rnnlab.run.console import WARNINGS_TO_IGNORE
from tests.project import ROOT, write_repetitive_corpus
from tests.search.postgres import postgres_server, postgres_url  # noqa: F401  (a PostgreSQL server)

pytest_plugins = ["tests.ci_skips", "pytester"]

# The user's own cache and config folders, read before any test points HOME elsewhere: watched whole,
# since a tool that writes into either (matplotlib, a browser, a library's cache) would do so there.
REAL_FOLDERS = tuple(
    Path(os.environ.get(variable) or Path.home() / default)
    for variable, default in (("XDG_CACHE_HOME", ".cache"), ("XDG_CONFIG_HOME", ".config"))
)
# What running the suite itself may leave in the repository (bytecode, the editable install, caches).
SNAPSHOT = pytest.StashKey[tuple[set, ...]]()  # (repository, *real folders) at the start
NOT_LITTER = {".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".hypothesis"}


def pytest_configure(config: pytest.Config) -> None:
    """The warnings a run filters (`rnnlab.run.console`), filtered in tests too: one list for both."""
    for message in WARNINGS_TO_IGNORE:
        config.addinivalue_line("filterwarnings", f"ignore:{message}")
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:tensorboard.*")


# -- the once-per-run guard: nothing left in the repository, the real ~/.cache or ~/.config ------------
def files_under(root: Path, skip: set[str] = frozenset()) -> set[str]:
    """Every file and folder under `root` (relative paths), leaving out `skip`'s names."""
    found = set()
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in skip and not d.endswith(".egg-info")]
        found.update(str((Path(folder) / name).relative_to(root)) for name in [*dirs, *files])
    return found


def is_controller(config: pytest.Config) -> bool:
    """The process that runs the whole session (not one of pytest-xdist's workers)."""
    return not hasattr(config, "workerinput")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    if is_controller(session.config):
        folders = (files_under(folder) for folder in REAL_FOLDERS)
        session.config.stash[SNAPSHOT] = (files_under(ROOT, NOT_LITTER), *folders)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run (exit status 1) if the tests left anything in the repository or the real cache and
    config folders. (Another program of the user's writing there while the suite runs is named too.)"""
    if not is_controller(session.config) or SNAPSHOT not in session.config.stash:
        return
    repository, *before = session.config.stash[SNAPSHOT]
    problems = [f"repository: {p}" for p in sorted(files_under(ROOT, NOT_LITTER) - repository)]
    for folder, names in zip(REAL_FOLDERS, before, strict=True):
        problems += [f"{folder}: {p}" for p in sorted(files_under(folder) - names)]
    if not problems:
        return
    shown = "\n  ".join(problems[:30]) + (
        f"\n  ... and {len(problems) - 30} more" if len(problems) > 30 else ""
    )
    message = f"the tests left new files outside their temp dirs:\n  {shown}"
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_sep("=", "litter", red=True)
        reporter.write_line(message)
    else:
        print(message)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


# -- every test in temp dirs of its own ------------------------------------------------------------------
@dataclass
class Isolated:
    """The temp dirs a test runs in: HOME, $RNNLAB_DATA_DIR, $RNNLAB_OUTPUT_DIR and the working directory."""

    home: Path
    data_dir: Path
    output_dir: Path
    cwd: Path


def isolate(root: Path, patch: pytest.MonkeyPatch) -> Isolated:
    dirs = Isolated(root / "home", root / "data-dir", root / "outputs", root / "cwd")
    for folder in (dirs.home, dirs.data_dir, dirs.cwd):
        folder.mkdir()
    patch.setenv("HOME", str(dirs.home))
    patch.setenv("RNNLAB_DATA_DIR", str(dirs.data_dir))
    patch.setenv("RNNLAB_OUTPUT_DIR", str(dirs.output_dir))
    for variable in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME"):  # would take ~/.cache's place...
        patch.delenv(variable, raising=False)
    # Sockets and such of servers the tests start (gunicorn's control socket, else in ~/.gunicorn/)
    runtime = root / "runtime"
    runtime.mkdir(mode=0o700)
    patch.setenv("XDG_RUNTIME_DIR", str(runtime))
    patch.chdir(dirs.cwd)
    return dirs


@pytest.fixture(scope="session", autouse=True)
def isolated_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Isolated]:
    """The same for module and session fixtures (they are set up before any test's own dirs), and a
    folder for children's output files. Matplotlib's font cache is shared by the whole session, so that
    children do not rebuild it in every test's empty HOME."""
    root = tmp_path_factory.mktemp("session")
    with pytest.MonkeyPatch.context() as patch:
        dirs = isolate(root, patch)
        patch.setenv("MPLCONFIGDIR", str(root / "matplotlib"))
        if os.environ.get("PYTEST_XDIST_WORKER"):  # parallel by processes: one thread each, children too
            patch.setenv("OMP_NUM_THREADS", "1")
            torch.set_num_threads(1)
        patch.setattr(project, "CHILD_OUTPUT", root / "child-output")
        project.CHILD_OUTPUT.mkdir()
        yield dirs
    check_home_is_empty(dirs.home, "a module or session fixture")


@pytest.fixture(autouse=True)
def isolated(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Isolated]:
    """Every test gets its own HOME, data directory, output directory and working directory: token
    caches, downloads and runs, its own and its children's, stay out of the user's ~/.cache/rnnlab and
    out of the repository. The HOME must be empty when the test ends: what rnnlab (or a tool it runs)
    writes there despite RNNLAB_DATA_DIR and RNNLAB_OUTPUT_DIR would land in a user's home."""
    dirs = isolate(tmp_path_factory.mktemp("isolated"), monkeypatch)
    yield dirs
    if request.node.get_closest_marker("writes_home") is None:
        check_home_is_empty(dirs.home, "the test")


def check_home_is_empty(home: Path, who: str) -> None:
    written = sorted(str(p.relative_to(home)) for p in home.rglob("*"))
    if written:
        shown = ", ".join(written[:10]) + (f" and {len(written) - 10} more" if len(written) > 10 else "")
        pytest.fail(
            f"{who} left files in its HOME ({home}): {shown}; keep them out of HOME, or mark the test "
            "@pytest.mark.writes_home if writing there is its point",
            pytrace=False,
        )


@pytest.fixture
def repetitive_corpus(tmp_path: Path) -> Path:
    return write_repetitive_corpus(tmp_path / "corpus.txt")


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
