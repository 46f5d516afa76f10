"""The house rules as CI checks them: import-linter's contracts (pyproject.toml) and ruff."""
import shutil
import subprocess

import pytest
from conftest import ROOT


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return found


def test_every_import_contract_is_kept():
    done = subprocess.run([_tool("lint-imports"), "--no-cache"], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "Contracts: 6 kept, 0 broken." in done.stdout


def test_ruff_finds_nothing():
    done = subprocess.run([_tool("ruff"), "check", "--no-cache", "."], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]


# What makes a test slow: it starts `pytest bench/` (run_bench, or a fixture of a real run), another TensorFlow
# process, or LoadGen. The quick loop, `pytest -m "not slow"`, leaves them out; this keeps the marks true.
SLOW_SIGNS = ("run_bench(", "subprocess.", "tensorboard_serves(", "loadgen", "killing_runtime")
SLOW_FIXTURES = {"smoke_run", "runtime_runs", "jax_run", "cluster_run", "killed_run", "small_run"}
QUICK_ANYWAY = {"test_house.py", "test_report.py", "test_report_browser.py"}  # their subprocesses start no TensorFlow


def test_every_test_that_starts_tensorflow_processes_or_loadgen_is_marked_slow():
    import ast

    unmarked = []
    for path in sorted(ROOT.glob("tests/test_*.py")):
        source = path.read_text()
        module_slow = "pytestmark = pytest.mark.slow" in source
        functions = [node for node in ast.parse(source).body if isinstance(node, ast.FunctionDef)]
        # a module's own helper that starts a process is a sign too
        signs = (*SLOW_SIGNS, *(f"{node.name}(" for node in functions if not node.name.startswith("test_")
                                and any(sign in ast.get_source_segment(source, node) for sign in SLOW_SIGNS)))
        for node in functions:
            if not node.name.startswith("test_"):
                continue
            text = ast.get_source_segment(source, node)
            marked = module_slow or any("mark.slow" in ast.unparse(d) for d in node.decorator_list)
            slow = any(sign in text for sign in signs) or SLOW_FIXTURES & {a.arg for a in node.args.args}
            if slow and not marked and path.name not in QUICK_ANYWAY:
                unmarked.append(f"{path.name}::{node.name}")
    assert not unmarked, unmarked
