"""MLflow beside TensorBoard, the way a person sees it: the database queried through `MlflowClient`,
a resumed run going on in the same MLflow run, and the run's page in `mlflow ui` in a headless browser.
Skipped, saying so, without the `track` extra (or without Debian's chromium for the browser check)."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from rnnlab.errors import UserError
from rnnlab.tracking.mlflow import check_installed, check_tracking_uri
from tests.ci_skips import unavailable
from tests.project import TINY, call, chromium, rendered_page, run_dirs, write_repetitive_corpus

needs_mlflow = pytest.mark.skipif(
    importlib.util.find_spec("mlflow") is None, reason='MLflow is not installed: pip install -e ".[track]"'
)


def test_without_mlflow_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if it were not installed
    with pytest.raises(UserError, match=r'pip install -e "\.\[track\]"'):
        check_installed()


def test_the_file_store_is_refused_and_a_sqlite_folder_is_made(tmp_path):
    for uri in (str(tmp_path / "mlruns"), f"file://{tmp_path}/mlruns"):
        with pytest.raises(UserError, match="file store"):
            check_tracking_uri(uri)
    check_tracking_uri(f"sqlite:///{tmp_path}/deep/er/mlflow.db")
    assert (tmp_path / "deep" / "er").is_dir()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@needs_mlflow
def test_an_unreachable_tracking_server_is_one_line_and_exit_2(workdir, repetitive_corpus, capfd):
    uri = f"http://127.0.0.1:{free_port()}"
    result = call(
        "train.py",
        *TINY,
        f"data.path={repetitive_corpus}",
        "logger=mlflow",
        f"logger.mlflow.tracking_uri={uri}",
        cwd=workdir,
        capfd=capfd,
    )
    assert result.returncode == 2
    errors = [line for line in (result.stdout + result.stderr).splitlines() if "error:" in line]
    assert len(errors) == 1 and "cannot be reached" in errors[0] and "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def tracked(tmp_path_factory) -> tuple[Path, Path, dict]:
    """A finished 2-epoch run with logger=tensorboard_mlflow, resumed for a third epoch;
    yields (its working dir, the run dir, metrics.json after the first part)."""
    if importlib.util.find_spec("mlflow") is None:
        unavailable('MLflow is not installed: pip install -e ".[track]"')
    workdir = tmp_path_factory.mktemp("mlflow") / "work"
    workdir.mkdir()
    corpus = write_repetitive_corpus(workdir.parent / "corpus.txt")
    settings = [*TINY, f"data.path={corpus}", "data.max_tokens=3000", "logger=tensorboard_mlflow"]
    first = call(
        "train.py", *settings, "trainer.max_epochs=2", "tags=[baseline,ablation]", cwd=workdir, capfd=None
    )
    assert first.returncode == 0, first.stderr[-3000:]
    (run_dir,) = run_dirs(workdir / "outputs")
    before = json.loads((run_dir / "metrics.json").read_text())
    resumed = call("train.py", f"resume={run_dir}", "trainer.max_epochs=3", cwd=workdir, capfd=None)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    return workdir, run_dir, before


@pytest.mark.slow
def test_the_database_holds_the_config_every_metric_the_tags_and_the_final_values(tracked):
    from mlflow import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    workdir, run_dir, before = tracked
    assert [p.name for p in workdir.iterdir()] == ["outputs"]
    assert (workdir / "outputs" / "mlflow.db").is_file() and not (workdir / "mlruns").exists()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["mlflow_run_id"] == before["mlflow_run_id"]  # the resume went on in the same run
    client = MlflowClient(f"sqlite:///{workdir / 'outputs' / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "rnnlab"]
    (found,) = client.search_runs([experiment.experiment_id])  # one run, not one per part
    assert found.info.run_id == metrics["mlflow_run_id"] and found.info.status == "FINISHED"
    params, tags = found.data.params, found.data.tags
    assert params["model.hidden_size"] == "16" and params["data.batch_size"] == "4"
    assert params["parameters"] == str(metrics["parameters"]) and params["git_commit"] == str(
        metrics["git_commit"]
    )
    assert tags["baseline"] == tags["ablation"] == "true"
    assert tags["best_checkpoint"] == metrics["best_checkpoint"] and tags["status"] == "completed"
    assert found.data.metrics["final/val_ppl"] == pytest.approx(metrics["val_ppl"])
    assert found.data.metrics["final/test_ppl"] == pytest.approx(metrics["test_ppl"])
    history = client.get_metric_history(found.info.run_id, "val/ppl")
    assert sorted({point.step for point in history}) == sorted(
        {e.step for e in EventAccumulator(str(run_dir)).Reload().Scalars("val/ppl")}
    )
    assert len({point.step for point in history}) == 3  # two epochs, then the resumed third
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0}).Reload()
    assert set(events.Tags()["scalars"]) <= set(found.data.metrics)  # every metric TensorBoard got


@pytest.mark.slow
@pytest.mark.skipif(chromium() is None, reason="no chromium (Debian: apt-get install -y chromium)")
def test_the_run_page_in_mlflow_ui_shows_its_params_and_metrics(tracked, tmp_path):
    workdir, run_dir, before = tracked
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "ui",
            "--backend-store-uri",
            f"sqlite:///{workdir / 'outputs' / 'mlflow.db'}",
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--workers",
            "1",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "mlflow ui did not start"
                time.sleep(1)
        from mlflow import MlflowClient

        found = MlflowClient(f"sqlite:///{workdir / 'outputs' / 'mlflow.db'}").get_run(
            before["mlflow_run_id"]
        )
        page = f"http://127.0.0.1:{port}/#/experiments/{found.info.experiment_id}/runs/{found.info.run_id}"
        shown = rendered_page(page, tmp_path, 20000, 180)
        assert shown.returncode == 0, shown.stderr[-2000:]
        dom = shown.stdout
        assert found.info.run_name in dom  # the run's page, not the app's empty shell
        assert "hidden_size" in dom and "val/ppl" in dom
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_the_tracking_uri_follows_mlflow_tracking_uri_when_it_is_set(monkeypatch):
    from tests.project import compose_train

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    default = compose_train("logger=mlflow", output_dir="/nonexistent/run").logger.mlflow.tracking_uri
    assert default.startswith("sqlite:///") and default.endswith("/mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    cfg = compose_train("logger=mlflow", output_dir="/nonexistent/run")
    assert cfg.logger.mlflow.tracking_uri == "http://127.0.0.1:5000"
    given = compose_train("logger=mlflow", "logger.mlflow.tracking_uri=sqlite:///x.db", output_dir="/x")
    assert given.logger.mlflow.tracking_uri == "sqlite:///x.db"  # the command line still wins


@needs_mlflow
def test_other_mlflow_logger_options_are_passed_through(tmp_path, monkeypatch):
    import lightning.pytorch.loggers as loggers
    from hydra.utils import instantiate

    from tests.project import compose_train

    given = {}

    class Recording(loggers.MLFlowLogger):
        def __init__(self, **kwargs):
            given.update(kwargs)
            super().__init__(**kwargs)

    monkeypatch.setattr(loggers, "MLFlowLogger", Recording)
    cfg = compose_train(
        "logger=mlflow",
        f"paths.output_root={tmp_path}",
        "+logger.mlflow.prefix=fit",
        "+logger.mlflow.log_model=true",
        output_dir=str(tmp_path / "run"),
    )
    (tmp_path / "run").mkdir()
    logger = instantiate(cfg.logger.mlflow)
    assert isinstance(logger, Recording)
    assert given["prefix"] == "fit" and given["log_model"] is True
