import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from bench.engines import environment

environment()  # as in bench/: allocator statistics on the CPU; Keras starts in the tests that import it

ROOT = Path(__file__).resolve().parent.parent
SMOKE_MODELS = "lenet5,conv5x5"

# Models whose blocks a shallower model of the zoo already has, only more of them: the quick loop builds the shallower
# (and keras.applications' twins vgg16, resnet50, resnet50v2); `pytest` builds every model.
DEEPER_SIBLINGS = {"vgg13", "vgg19", "resnet34", "resnet101", "resnet152", "resnet101v2", "resnet152v2",
                   *(f"resnet{depth}{version}" for depth in (32, 44, 56, 110) for version in ("", "v2"))}


def zoo(names) -> list:
    """Model names as test parameters, the deeper siblings marked slow."""
    return [pytest.param(name, marks=pytest.mark.slow) if name in DEEPER_SIBLINGS else name for name in names]


def run_bench(*args, cwd, timeout=600, env=None):
    """`python -m pytest bench/ ...` in a subprocess, as a user runs it, in `cwd`: a test's own folder, so that its
    runs, journals, traces and results never land in the checkout's. No spread workers unless the test names them
    (they take a minute, and the smoke run's tests check them)."""
    workers = () if "--spread-workers" in args or "--help" in args else ("--spread-workers", "0")
    return subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "bench"), "-q", "-p", "no:cacheprovider",
                           *args, *workers], capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env)


USER_FOLDERS = (".benchmarks", "results")  # the user's runs and reports: the tests write only in their own folders


def _listing() -> dict:
    """path -> (size, mtime) of every file under the checkout's USER_FOLDERS."""
    return {str(path.relative_to(ROOT)): (path.stat().st_size, path.stat().st_mtime_ns)
            for folder in USER_FOLDERS if (ROOT / folder).is_dir()
            for path in sorted((ROOT / folder).rglob("*")) if path.is_file()}


EXPORT_CACHE = pytest.StashKey[str]()


def pytest_configure(config):
    """The deployment runtimes' exports go to a cache of the tests' own (the runs they start inherit it), not the
    user's. Made here, not at import, so that a process importing this module outside a test session leaves none."""
    config.stash[EXPORT_CACHE] = os.environ["CNNBENCH_EXPORT_CACHE"] = tempfile.mkdtemp(prefix="cnnbench-test-exports-")


def pytest_unconfigure(config):
    if EXPORT_CACHE in config.stash:  # unconfigure runs after an interrupted session too
        shutil.rmtree(config.stash[EXPORT_CACHE], ignore_errors=True)


def pytest_sessionstart(session):
    session.config.stash[USER_FILES] = _listing()


def pytest_sessionfinish(session, exitstatus):
    """The tests fail if they changed the user's runs or reports (a run of the suite beside them would too)."""
    before, after = session.config.stash.get(USER_FILES, None), _listing()
    if before is None or before == after:
        return
    changed = sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))
    session.config.get_terminal_writer().line(
        f"the tests changed the checkout's {' or '.join(USER_FOLDERS)}: {', '.join(changed[:10])}"
        + (f" and {len(changed) - 10} more" if len(changed) > 10 else ""), red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


USER_FILES = pytest.StashKey[dict]()


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """A real smoke run of two small models: its saved JSON and its traces folder."""
    out = tmp_path_factory.mktemp("smoke")
    done = run_bench("--bench-preset", "smoke", "--models", SMOKE_MODELS, "--benchmark-json", str(out / "run.json"),
                     "--trace-dir", str(out / "traces"), "-k", "test_case", "--spread-workers", "1", cwd=out)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((out / "run.json").read_text()), out / "traces"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
        if response.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        return body


def tensorboard_serves(traces, case: str) -> None:
    """TensorBoard, on 127.0.0.1 over `traces`, lists the case's trace and serves its overview page."""
    port = _free_port()
    board = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(traces), "--host",
                              "127.0.0.1", "--port", str(port)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/data/plugin/profile"
    try:
        deadline, runs = time.monotonic() + 120, []
        while time.monotonic() < deadline and len(runs) < 2:
            try:
                runs = json.loads(_get(f"{base}/runs"))
            except OSError:
                pass
            time.sleep(1)
        case_runs = [r for r in runs if case in r]
        assert case_runs, runs
        tools = json.loads(_get(f"{base}/run_tools?run={urllib.parse.quote(case_runs[0])}"))
        assert "trace_viewer" in tools or "trace_viewer@" in tools, tools
        hosts = json.loads(_get(f"{base}/hosts?run={urllib.parse.quote(case_runs[0])}&tag=overview_page"))
        host = hosts[0]["hostname"] if hosts and isinstance(hosts[0], dict) else (hosts[0] if hosts else "")
        query = urllib.parse.urlencode({"run": case_runs[0], "tag": "overview_page", "host": host})
        assert len(_get(f"{base}/data?{query}")) > 100
    finally:
        board.terminate()
        board.wait(timeout=30)
