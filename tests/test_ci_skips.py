"""tests/ci_skips.py: under CI=true every skip but a CUDA one fails, whichever way it skips; elsewhere a
skip stays a skip. Each case runs a small suite of its own in-process (pytester)."""

from __future__ import annotations

import pytest

SUITE = {
    "test_kinds.py": """
        import pytest
        from tests.ci_skips import NO_CUDA, unavailable

        def test_skips_in_its_body():
            pytest.skip("the browser is not installed")

        @pytest.mark.skipif(True, reason="the cluster is not reachable")
        def test_skipif():
            pass

        @pytest.fixture
        def database():
            unavailable("no database server (set RNNLAB_TEST_DB)")

        def test_a_fixture_says_unavailable(database):
            pass

        @pytest.mark.skipif(True, reason=f"{NO_CUDA} (none here)")
        def test_needs_cuda():
            pass

        @pytest.mark.xfail(reason="known")
        def test_expected_to_fail():
            assert False

        def test_runs():
            pass
    """,
    "test_module_skip.py": """
        import pytest
        pytest.importorskip("a_module_nobody_installed", reason="the extra is not installed")

        def test_never_collected():
            pass
    """,
}


def run_suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str | None, *files: str):
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    pytester.makepyfile(**{name[:-3]: SUITE[name] for name in files})
    return pytester.runpytest_inprocess("-p", "tests.ci_skips", "-p", "no:cacheprovider", "-ra")


def test_under_ci_a_skip_fails_naming_its_reason_unless_it_needs_cuda(pytester, monkeypatch):
    result = run_suite(pytester, monkeypatch, "true", "test_kinds.py")
    # a skip in the test's body fails its call; one in a mark or a fixture fails its setup (an error)
    result.assert_outcomes(passed=1, failed=1, errors=2, skipped=1, xfailed=1)
    output = result.stdout.str()
    assert "CI=true, and this skipped: the browser is not installed" in output
    assert "CI=true, and this skipped: the cluster is not reachable" in output
    assert "CI=true, and no database server (set RNNLAB_TEST_DB)" in output
    assert "SKIPPED [1] test_kinds.py" in output and "needs a CUDA device (none here)" in output


def test_under_ci_a_module_that_skips_stops_the_run(pytester, monkeypatch):
    result = run_suite(pytester, monkeypatch, "true", "test_module_skip.py", "test_kinds.py")
    result.assert_outcomes(errors=1)  # a collection error: nothing runs on a machine missing an extra
    assert "CI=true, and this skipped: the extra is not installed" in result.stdout.str()
    assert result.ret != 0


@pytest.mark.parametrize("ci", [None, "false"])
def test_elsewhere_a_skip_stays_a_skip(pytester, monkeypatch, ci):
    result = run_suite(pytester, monkeypatch, ci, "test_kinds.py", "test_module_skip.py")
    result.assert_outcomes(passed=1, skipped=5, xfailed=1)
