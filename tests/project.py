"""What the tests share, in one place (test modules import helpers from here, never from each other):
where the project's files are, the small inputs tests write (a repetitive corpus, synthetic MNIST, a
language-model checkpoint), composing the configs, and running the scripts: their `main(argv)` called
in this process (`call`: output, refusals, files written), or as a user starts them, a fresh interpreter
each (`run`, `start`: for what only a process shows), each child with a deadline and its output kept in
a file that a failure message names."""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"


def plugin_installed(module: str) -> bool:
    """Whether a Hydra plugin is importable; without any plugin there is no `hydra_plugins` package at all."""
    return importlib.util.find_spec("hydra_plugins") is not None and (
        importlib.util.find_spec(f"hydra_plugins.{module}") is not None
    )


def module_installed(module: str) -> bool:
    """Whether an optional dependency (e.g. optuna, of the sweep extra) is importable."""
    return importlib.util.find_spec(module) is not None


# -- inputs -----------------------------------------------------------------------------------------
# A short text repeated many times: a model can learn it perfectly, so perplexity can approach 1.
PANGRAM = "the quick brown fox jumps over the lazy dog "


def write_repetitive_corpus(path: Path) -> Path:
    path.write_text((PANGRAM * 12 + "\n") * 40)
    return path


def compose_train(*overrides: str, output_dir: str = "/nonexistent/run"):
    """The train config as scripts/train.py composes it, with this run directory."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=[*overrides, f"paths.output_dir={output_dir}"])


def checkpoint_vocab():
    from rnnlab.data.text.vocab import Vocab

    return Vocab.build("the time traveller")


def checkpoint_network_config() -> dict:
    """The network config that `save_language_model` writes (a GRU of 12 over `checkpoint_vocab()`)."""
    size = len(checkpoint_vocab())
    return {
        "_target_": "rnnlab.models.recurrent.RecurrentNet",
        "input_size": size,
        "output_size": size,
        "cell": "gru",
        "hidden_size": 12,
    }


def save_language_model(path: Path, network=None, **meta) -> Path:
    """A checkpoint laid out as a run writes it (weights under `network.`, the `rnnlab` entry)."""
    from rnnlab.models.recurrent import RecurrentNet

    vocab = checkpoint_vocab()
    network = network or RecurrentNet(len(vocab), len(vocab), "gru", 12)
    rnnlab = {"task": "language_model", "network": checkpoint_network_config(), "vocab": vocab.to_dict()}
    state = {f"network.{k}": v for k, v in network.state_dict().items()}
    torch.save({"state_dict": state, "rnnlab": {**rnnlab, **meta}}, path)
    return path


# Synthetic MNIST: each class is its own stroke figure (ring, bars, diagonals, cross, blob), drawn at a
# random shift of up to 2 pixels with random brightness and background noise, so the classes are
# distinct but no two images are the same.
MNIST_SIDE = 28
MNIST_MAX_SHIFT = 2


def _digit_templates() -> torch.Tensor:
    """[10, 28, 28] bool: one stroke figure per class."""
    side = MNIST_SIDE
    y, x = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    radius = ((y - 13.5) ** 2 + (x - 13.5) ** 2).sqrt()
    inside = (y >= 5) & (y <= 22) & (x >= 5) & (x <= 22)

    def band(values: torch.Tensor, low: int) -> torch.Tensor:
        return (values >= low) & (values < low + 3)

    return torch.stack(
        [
            (radius >= 6) & (radius < 9),  # 0: ring
            band(x, 12) & inside,  # 1: vertical bar, centre
            band(y, 5) & inside,  # 2: horizontal bar, top
            band(y, 20) & inside,  # 3: horizontal bar, bottom
            band(x, 5) & inside,  # 4: vertical bar, left
            band(x, 20) & inside,  # 5: vertical bar, right
            ((y - x).abs() <= 1) & inside,  # 6: diagonal \
            ((y + x - 27).abs() <= 1) & inside,  # 7: diagonal /
            (band(x, 12) | band(y, 12)) & inside,  # 8: cross
            (y >= 10) & (y < 18) & (x >= 10) & (x < 18),  # 9: filled square
        ]
    )


def synthetic_digits(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` uint8 images [n, 28, 28] and their labels [n] (uint8), classes balanced and shuffled."""
    generator = torch.Generator().manual_seed(seed)
    labels = (torch.arange(n) % 10)[torch.randperm(n, generator=generator)]
    strokes = _digit_templates()[labels].float()
    shifts = torch.randint(-MNIST_MAX_SHIFT, MNIST_MAX_SHIFT + 1, (n, 2), generator=generator)
    for i, (dy, dx) in enumerate(shifts.tolist()):
        strokes[i] = strokes[i].roll((dy, dx), dims=(0, 1))
    brightness = torch.randint(160, 256, (n, 1, 1), generator=generator).float()
    noise = torch.randint(0, 50, (n, MNIST_SIDE, MNIST_SIDE), generator=generator).float()
    images = (strokes * brightness + noise).clamp(0, 255)
    return images.to(torch.uint8), labels.to(torch.uint8)


def write_mnist(folder: Path, n_train: int = 300, n_test: int = 50, seed: int = 0) -> Path:
    """Write the four MNIST files (canonical names, gzip IDX) into `folder`; returns `folder`."""
    from rnnlab.data.files.idx import write_idx
    from rnnlab.data.lessons.mnist import TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    train_images, train_labels = synthetic_digits(n_train, seed)
    test_images, test_labels = synthetic_digits(n_test, seed + 1)
    write_idx(folder / TRAIN_IMAGES, train_images)
    write_idx(folder / TRAIN_LABELS, train_labels)
    write_idx(folder / TEST_IMAGES, test_images)
    write_idx(folder / TEST_LABELS, test_labels)
    return folder


class StreamCheck(L.Callback):
    """Fails the run if a process's row i of batch t+1 does not continue its row i of batch t (added to
    runs by `+callbacks.stream_check._target_=tests.project.StreamCheck`)."""

    def on_train_epoch_start(self, trainer, pl_module):
        self.previous_targets = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        inputs, targets = batch
        assert inputs.shape[0] == trainer.datamodule.batch_size // trainer.world_size
        if self.previous_targets is not None:
            # the last target of a row is the next token of its stream, so the next batch's first input
            assert torch.equal(self.previous_targets[:, -1], inputs[:, 0]), (
                f"rank {trainer.global_rank}: stream broken"
            )
        self.previous_targets = targets


# A bare Lightning Trainer on the CPU that writes nothing and prints nothing but what a test asks for.
QUIET_TRAINER = dict(
    accelerator="cpu",
    logger=False,
    enable_checkpointing=False,
    enable_progress_bar=False,
    enable_model_summary=False,
)


# -- a page as a person sees it -----------------------------------------------------------------------
def chromium() -> str | None:
    """Debian's headless browser, if installed (apt-get install chromium)."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def rendered_page(url: str, folder: Path, budget_ms: int, timeout: float) -> subprocess.CompletedProcess:
    """The DOM of `url` after its scripts ran for `budget_ms` of virtual time, in headless Chromium
    with an empty profile under `folder` and none of its background traffic (the network is closed).
    Its config and cache folders (crash reports, dconf) go there too, not into HOME."""
    with tempfile.TemporaryDirectory(dir=folder) as profile:
        env = {**os.environ, "XDG_CONFIG_HOME": f"{profile}/config", "XDG_CACHE_HOME": f"{profile}/cache"}
        return subprocess.run(
            [
                chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}/profile",
                f"--virtual-time-budget={budget_ms}",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )


# -- children ---------------------------------------------------------------------------------------
TINY = ["data=text", "data.batch_size=4", "data.num_steps=10", "model.hidden_size=16"]
# lm_optuna with its network fixed small: the learning rate (and the dropout) are what is searched
SMALL_SEARCH = [
    "hparams_search=lm_optuna",
    *TINY,
    "data.max_tokens=3000",
    "model.num_layers=1",
    "task.tbptt_steps=10",
]
# The data-parallel tests' run (torchrun and srun against one process): 8 streams of 10 characters a
# batch, 2 epochs of a random text given as data.path
DISTRIBUTED_RUN = [
    "data=text",
    "data.batch_size=8",
    "data.eval_batch_size=4",
    "data.num_steps=10",
    "model=gru",
    "model.hidden_size=16",
    "optimizer=sgd",
    "optimizer.lr=0.5",
    "trainer.max_epochs=2",
    "trainer.deterministic=true",
    "seed=5",
]
# Set by tests/conftest.py (per test process): where children's output files go.
CHILD_OUTPUT: Path | None = None


def child_environment(cwd: Path | None = None, **extra: str) -> dict[str, str]:
    """This test's environment for a child: HOME, RNNLAB_DATA_DIR and RNNLAB_OUTPUT_DIR in the test's
    own temp dirs (tests/conftest.py sets them), no Hydra variables. Given the child's `cwd` (a temp
    dir of the test's), runs go where a user's would: `outputs/` in it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYDRA_")}
    if cwd is not None:
        env["RNNLAB_OUTPUT_DIR"] = "outputs"  # relative to the child's cwd, as the default is
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def new_output_file(name: str) -> Path:
    """A fresh file for a child's output, in this test process's child-output folder."""
    folder = CHILD_OUTPUT or Path(tempfile.gettempdir())
    handle, path = tempfile.mkstemp(prefix=f"{name}-", suffix=".log", dir=folder)
    os.close(handle)
    return Path(path)


def tail(path: Path, characters: int = 3000) -> str:
    return path.read_text(errors="replace")[-characters:] if path.exists() else ""


@dataclass
class Finished:
    """A command that ran to its end (a child, or a script's `main` called here): its exit status and
    output, and the files that hold a child's output."""

    command: list[str]
    returncode: int
    stdout: str
    stderr: str
    stdout_file: Path | None = None
    stderr_file: Path | None = None

    def why(self, characters: int = 3000) -> str:
        """For a failure message: the status, where the whole output is, and its end."""
        output = (self.stdout + self.stderr)[-characters:]
        kept = f"; stdout {self.stdout_file}, stderr {self.stderr_file}" if self.stdout_file else ""
        return f"exit {self.returncode}{kept}; ends:\n{output}"


def stop_group(process: subprocess.Popen) -> None:
    """SIGKILL the child and whatever it started (it runs in its own session)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)


def run_command(
    command: list[str], *, cwd: Path, timeout: float, env: dict[str, str] | None = None
) -> Finished:
    """Run `command` to its end, at most `timeout` seconds (then it and its children are killed and the
    test fails naming the output files). A fresh process, as a user starts it."""
    name = Path(command[1]).stem if len(command) > 1 else "child"
    stdout_file, stderr_file = new_output_file(f"{name}-stdout"), new_output_file(f"{name}-stderr")
    process = launch(command, cwd=cwd, env=env, stdout=stdout_file, stderr=stderr_file)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_group(process)
        raise AssertionError(
            f"{' '.join(command)} ran past its {timeout} s deadline and was killed; "
            f"stdout {stdout_file}, stderr {stderr_file}; stderr ends:\n{tail(stderr_file)}"
        ) from None
    return Finished(
        command,
        process.returncode,
        stdout_file.read_text(errors="replace"),
        stderr_file.read_text(errors="replace"),
        stdout_file,
        stderr_file,
    )


def launch(
    command: list[str], *, cwd: Path, env: dict[str, str] | None, stdout: Path, stderr: Path | None
) -> subprocess.Popen:
    """Start `command` in its own session, output to `stdout` (and `stderr`, or `stdout` when None)."""
    env = dict(os.environ if env is None else env)
    with contextlib.ExitStack() as files:
        out = files.enter_context(stdout.open("w"))
        err = subprocess.STDOUT if stderr is None else files.enter_context(stderr.open("w"))
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def wait_all(processes: list[subprocess.Popen], timeout: float) -> None:
    """Wait for processes started together; any still running when one fails or times out is killed."""
    try:
        for process in processes:
            process.wait(timeout=timeout)
    finally:
        for process in processes:
            if process.poll() is None:
                stop_group(process)


def run(script: str, *args: str, cwd: Path, timeout: float = 600, **env: str) -> Finished:
    """`python scripts/<script> ARGS` in `cwd`, as a user runs it (a fresh interpreter), with this test's
    environment."""
    command = [sys.executable, str(ROOT / "scripts" / script), *args]
    return run_command(command, cwd=cwd, timeout=timeout, env=child_environment(cwd, **env))


# -- a script's main, called in this process -----------------------------------------------------------
def all_loggers() -> list[logging.Logger]:
    return [logging.getLogger(), *map(logging.getLogger, list(logging.Logger.manager.loggerDict))]


def logging_state() -> dict[logging.Logger, tuple]:
    return {
        lg: (lg.level, list(lg.handlers), lg.propagate, lg.disabled, list(lg.filters)) for lg in all_loggers()
    }


def restore_logging(state: dict[logging.Logger, tuple]) -> None:
    """Every logger as it was; handlers added since (Hydra's console and log file) closed."""
    kept = {handler for saved in state.values() for handler in saved[1]}
    for lg in all_loggers():
        for handler in lg.handlers:
            if handler not in kept:
                handler.close()
        level, handlers, propagate, disabled, filters = state.get(lg, (logging.NOTSET, [], True, False, []))
        lg.setLevel(level)
        lg.handlers[:], lg.filters[:] = handlers, filters
        lg.propagate, lg.disabled = propagate, disabled


@contextlib.contextmanager
def kept_process_state() -> Iterator[None]:
    """Puts back what a run changes in its process and a later test in this one would otherwise meet:
    environment (Lightning's PL_GLOBAL_SEED, a search's env_set), working directory, argv, signal
    handlers, logging (Hydra's handlers, the run's log file closed), warning filters, Hydra's singletons
    (HydraConfig would still say "multirun"), torch's deterministic mode, threads and random states."""
    import random

    import numpy
    from hydra.core.singleton import Singleton

    environ, cwd, argv = dict(os.environ), os.getcwd(), list(sys.argv)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)}
    logged = logging_state()
    hydra_state = Singleton.get_state()
    torch_state = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.get_num_threads(),
        torch.get_float32_matmul_precision(),
        torch.get_rng_state(),
    )
    other_random = (random.getstate(), numpy.random.get_state())
    try:
        with warnings.catch_warnings():
            yield
    finally:
        os.environ.clear()
        os.environ.update(environ)
        os.chdir(cwd)
        sys.argv[:] = argv
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        restore_logging(logged)
        Singleton.set_state(hydra_state)
        deterministic, warn_only, threads, precision, rng = torch_state
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.set_num_threads(threads)
        torch.set_float32_matmul_precision(precision)
        torch.set_rng_state(rng)
        random.setstate(other_random[0])
        numpy.random.set_state(other_random[1])


def call(script: str, *args: str, cwd: Path, capfd: pytest.CaptureFixture | None, **env: str) -> Finished:
    """`main(ARGS)` of scripts/<script> in this process, as `run` runs the command: in `cwd`, with the
    environment a child of this test would get (`child_environment`), stdout and stderr captured by
    `capfd` (file descriptors too; None, in a fixture of a wider scope: by `captured_output`), and the
    process as it was afterwards (`kept_process_state`). For a test of output, refusals and files written;
    what only a process shows (a signal, a kill, a terminal, several ranks) needs `run` or `start`."""
    return call_main(load_script(Path(script).stem).main, script, *args, cwd=cwd, capfd=capfd, **env)


def call_main(
    main: Callable[[list[str]], int | None],
    name: str,
    *args: str,
    cwd: Path,
    capfd: pytest.CaptureFixture | None,
    **env: str,
) -> Finished:
    """`main(ARGS)` of a script (scripts/ or benchmarks/, `name` for the record) as `call` calls it; a
    `main` that returns None ended as a script that falls off its end: exit status 0."""
    if capfd is not None:
        capfd.readouterr()  # what the test printed before is not the command's
    environment = child_environment(cwd, **env)
    with contextlib.ExitStack() as stack:
        output = stack.enter_context(captured_output()) if capfd is None else None
        stack.enter_context(kept_process_state())
        os.environ.clear()
        os.environ.update(environment)
        os.chdir(cwd)
        try:
            returncode = main(list(args)) or 0
        except SystemExit as stop:  # a script that ends by raising it, as the interpreter would report it
            returncode = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
        sys.stdout.flush()
        sys.stderr.flush()
    out, err = capfd.readouterr() if capfd is not None else (output["stdout"], output["stderr"])
    return Finished(["main", name, *args], returncode, out, err)


@contextlib.contextmanager
def captured_output() -> Iterator[dict[str, str]]:
    """What is written to stdout and stderr inside, by Python or below it (file descriptors 1 and 2),
    for a fixture of a wider scope than `capfd`'s; the texts are in the dict afterwards."""
    texts: dict[str, str] = {}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        saved = [(fd, os.dup(fd)) for fd in (1, 2)]
        streams = sys.stdout, sys.stderr
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        sys.stdout = open(1, "w", closefd=False, buffering=1)  # noqa: SIM115  (closed below)
        sys.stderr = open(2, "w", closefd=False, buffering=1)  # noqa: SIM115
        try:
            yield texts
        finally:
            sys.stdout.close()
            sys.stderr.close()
            sys.stdout, sys.stderr = streams
            for fd, copy in saved:
                os.dup2(copy, fd)
                os.close(copy)
            for name, file in (("stdout", out), ("stderr", err)):
                file.seek(0)
                texts[name] = file.read().decode(errors="replace")


@dataclass
class Child:
    """A script still running, its stdout and stderr together in `output_file`."""

    process: subprocess.Popen
    output_file: Path

    def output(self) -> str:
        return self.output_file.read_text(errors="replace")

    def describe(self) -> str:
        return f"output in {self.output_file}; it ends:\n{tail(self.output_file)}"


def start(script: str, *args: str, cwd: Path) -> Child:
    """Start `python scripts/<script> ARGS` in `cwd` in its own session, output to a file."""
    output_file = new_output_file(Path(script).stem)
    command = [sys.executable, str(ROOT / "scripts" / script), *args]
    process = launch(command, cwd=cwd, env=child_environment(cwd), stdout=output_file, stderr=None)
    return Child(process, output_file)


def wait_until(condition: Callable[[], bool], *, timeout: float, child: Child, what: str) -> None:
    """Poll `condition` until it holds. The child ending first, or the deadline passing, fails the
    test (the child is killed) with a message naming `what` and its output."""
    deadline = time.monotonic() + timeout
    while not condition():
        if child.process.poll() is not None:
            raise AssertionError(
                f"the child ended (exit {child.process.returncode}) before {what}; {child.describe()}"
            )
        if time.monotonic() > deadline:
            stop_group(child.process)
            raise AssertionError(
                f"waited {timeout} s for {what} in vain; the child was killed; {child.describe()}"
            )
        time.sleep(0.02)


def read_terminal(master: int, process: subprocess.Popen, timeout: float) -> bytes:
    """Everything a child writes to its pseudo-terminal until it closes it, at most `timeout` seconds
    (then the child is killed and the test fails with what it wrote so far)."""
    deadline = time.monotonic() + timeout
    output = bytearray()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            stop_group(process)
            kept = new_output_file("terminal")
            kept.write_bytes(bytes(output))
            raise AssertionError(
                f"the terminal was still open after {timeout} s; the child was killed; output in {kept}"
            )
        ready, _, _ = select.select([master], [], [], min(left, 1.0))
        if not ready:
            continue
        try:
            chunk = os.read(master, 1 << 16)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    return bytes(output)


def run_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob(".hydra"))


def call_benchmark(script: str, *args: str, capfd: pytest.CaptureFixture, **env: str) -> Finished:
    """`main(ARGS)` of benchmarks/<script> in this process, as `call` runs a script, from the repository
    (the benchmarks start their children there); runs keep this test's own RNNLAB_OUTPUT_DIR, as the
    benchmark run as a child of the test would."""
    env = {"RNNLAB_OUTPUT_DIR": os.environ["RNNLAB_OUTPUT_DIR"], **env}
    main = load_benchmark(Path(script).stem).main
    return call_main(main, script, *args, cwd=ROOT, capfd=capfd, **env)


def load_benchmark(name: str):
    """A script of benchmarks/ as a module, to call its `main` in-process. Its folder goes on sys.path,
    as it is for the script run by hand: the benchmarks import `common` from it."""
    if str(ROOT / "benchmarks") not in sys.path:
        sys.path.insert(0, str(ROOT / "benchmarks"))
    return load_module(ROOT / "benchmarks" / f"{name}.py")


@functools.cache
def load_module(path: Path):
    spec = importlib.util.spec_from_file_location(f"rnnlab_{path.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def load_script(name: str):
    """A script of scripts/ as a module, to call its `main` in-process (a subprocess costs seconds
    of imports; tests that are about the command line itself run it as one)."""
    return load_module(ROOT / "scripts" / f"{name}.py")
