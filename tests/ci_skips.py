"""No hidden skip in CI: under CI=true a test that skips fails instead, unless it skipped for want of a
CUDA device (CI has none). `.ci/run` installs every extra the tests use and Chromium, so a skip there
would hide a test that never ran: a missing extra, browser, cluster or database is then a broken CI
machine, and the run says so. The skips that remain are listed by pytest's `-ra` summary.

One hook does it for every kind of skip (`pytest.skip`, `skipif`, `importorskip`, in a test, a fixture
or a module), so a new test cannot skip past it. `unavailable(reason)` is how a test or a fixture says
that a tool it needs is missing (an extra, Chromium, a cluster, a database server): a skip on a
developer's machine, a failure naming what is missing in CI. Loaded by tests/conftest.py.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest
import torch

NO_CUDA = "needs a CUDA device"  # the one reason a test may skip in CI
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason=f"{NO_CUDA} (none here)")


def in_ci() -> bool:
    """Whether the suite runs in CI (`CI=true`, as CI services set it; `.ci/run` sets it too)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def unavailable(reason: str) -> NoReturn:
    """Skip the test: a tool it needs is missing (`reason` says which, and how to install it). Under
    CI=true, fail it instead."""
    if in_ci():
        pytest.fail(f"CI=true, and {reason}", pytrace=False)
    pytest.skip(reason)


def skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return reason.removeprefix("Skipped: ")


def fail_a_skip_in_ci(report: pytest.TestReport | pytest.CollectReport) -> None:
    """Turn a skip into a failure under CI=true, unless it is for want of CUDA (an xfail stays one)."""
    if not report.skipped or hasattr(report, "wasxfail") or not in_ci():
        return
    reason = skip_reason(report)
    if reason.startswith(NO_CUDA):
        return
    report.outcome = "failed"
    report.longrepr = (
        f"CI=true, and this skipped: {reason}. CI installs every extra and tool the tests need "
        "(.ci/run); only a test that needs a CUDA device may skip there"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    outcome = yield
    fail_a_skip_in_ci(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> object:
    outcome = yield
    fail_a_skip_in_ci(outcome.get_result())
