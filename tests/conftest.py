import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli import quiet_tensorflow

quiet_tensorflow()  # as in bench/: the same environment, allocator statistics on the CPU

ROOT = Path(__file__).resolve().parent.parent
SMOKE_MODELS = "lenet5,conv5x5"


def run_bench(*args, cwd=ROOT, timeout=600, env=None):
    """`python -m pytest bench/ ...` in a subprocess, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "bench"), "-q", "-p", "no:cacheprovider",
                           *args], capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """A real smoke run of two small models: its saved JSON and its traces folder."""
    out = tmp_path_factory.mktemp("smoke")
    done = run_bench("--bench-preset", "smoke", "--models", SMOKE_MODELS, "--benchmark-json", str(out / "run.json"),
                     "--trace-dir", str(out / "traces"), "-k", "test_case")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((out / "run.json").read_text()), out / "traces"
