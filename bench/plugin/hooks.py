"""The pytest hooks of `pytest bench/`, each handing over to the session (bench/conftest.py imports them)."""
from __future__ import annotations

import contextlib
import time

import pytest

from . import saved, workers
from . import session as sessions
from .options import add_options

STARTED = time.perf_counter()  # before Keras and TensorFlow start: the budget and the time breakdown count them
CONSOLE_COLUMNS = ("median", "rounds", "ops")  # pytest-benchmark's table at the end of a run

__all__ = ["harness", "pytest_addoption", "pytest_benchmark_update_json", "pytest_benchmark_update_machine_info",
           "pytest_collection_modifyitems", "pytest_configure", "pytest_generate_tests", "pytest_report_header",
           "pytest_runtest_protocol", "pytest_sessionfinish"]


def pytest_addoption(parser):
    add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    config.option.trace = False  # before pytest's debugging plugin reads it: here --trace means profiler traces
    config.addinivalue_line("markers", "cnnbench: a benchmark case of the cnnbench matrix")
    session = sessions.Session.configure(config, STARTED)
    if session.is_worker:
        for name, off in (("benchmark_autosave", False), ("benchmark_save", None), ("benchmark_json", None)):
            if hasattr(config.option, name):
                setattr(config.option, name, off)
    given = " ".join(config.invocation_params.args)
    if hasattr(config.option, "benchmark_columns") and "--benchmark-columns" not in given:
        # pytest-benchmark's ten columns made a 230-character table; --benchmark-columns still asks for any
        config.option.benchmark_columns = list(CONSOLE_COLUMNS)
    if hasattr(config.option, "benchmark_sort") and "--benchmark-sort" not in given:
        config.option.benchmark_sort = "median"  # the column the table shows (its default, min, is not shown)
    if config.get_verbosity() == 0:  # -v keeps pytest's lines, -q its dots
        from .console import Progress
        config.pluginmanager.register(Progress(config), "cnnbench-progress")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    yield
    session = sessions.of(item.config)
    harness = session.harness if session else None
    write_line = item.config.pluginmanager.get_plugin("terminalreporter").write_line
    if harness is not None and harness.lost and not session.stopped:
        session.stopped = "worker lost"
        item.session.shouldstop = f"{harness.lost}: the run stops"
        write_line(f"cnnbench: {harness.lost}: the run stops; the case at hand is marked failed, what finished is "
                   "saved")
    if session and session.stopped and not item.session.shouldstop:  # said here, outside the test's captured output
        write_line(f"cnnbench: {session.stopped}: stopped after the current case; what finished is saved, marked "
                   "incomplete (pytest bench/ --resume measures the rest)")
        item.session.shouldstop = f"{session.stopped}: stopped after the current case"


def pytest_collection_modifyitems(config, items):
    resumed = sessions.of(config).resumed
    if not resumed:
        return
    done = [item for item in items if hasattr(item, "callspec") and "case" in item.callspec.params
            and resumed.is_finished(item.callspec.params["case"].test_id, item.callspec.params["case"].id)]
    if done:
        config.hook.pytest_deselected(items=done)
        items[:] = [item for item in items if item not in done]


def pytest_report_header(config):
    from .console import header

    session = sessions.of(config)
    return header(session.open_harness(), session.tracing)


def pytest_generate_tests(metafunc):
    if "case" in metafunc.fixturenames:
        visits = sessions.of(metafunc.config).open_harness().matrix.visits()
        metafunc.parametrize("case", visits, ids=[c.test_id for c in visits])


@pytest.fixture(scope="session")
def harness(request):
    session = sessions.of(request.config)
    harness = session.open_harness()
    yield harness
    harness.cache.clear()
    if harness.tracer is not None:
        harness.tracer.close()
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")

        def say(text: str) -> None:
            reporter.ensure_newline()
            reporter.write_line(f"cnnbench: {text}")
        session.time_in_workers(say)
    if session.stopped or workers.is_worker():  # a run told to stop ends now; a worker's ceilings are the run's
        return
    with harness.clock("probes"):
        harness.peaks.remeasure(harness.matrix.precisions)  # a second reading, no model in memory: the higher is kept


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["cnnbench"] = saved.machine_record(sessions.of(config))


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_json(config, benchmarks, output_json):
    saved.update(sessions.of(config), output_json)


def pytest_sessionfinish(session, exitstatus):
    """After pytest-benchmark saved the run (its hook wraps this one): the journal's end line."""
    state = sessions.of(session.config)
    if state is not None:
        state.close_journal(exitstatus, session.testsfailed)
