"""pytest-benchmark's own tools on our runs: plain JSON params, `pytest-benchmark compare` by case, to CSV."""
import csv
import json
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow  # every test here starts TensorFlow processes


def test_saved_params_are_the_case_and_its_fields_in_plain_json(smoke_run):
    run, _ = smoke_run
    cases = [b for b in run["benchmarks"] if "case" in b["extra_info"]]
    assert cases
    for bench in cases:
        info = bench["extra_info"]
        assert bench["params"] == {"case": info["case"], "model": info["model"], "mode": info["mode"],
                                   "batch_size": info["batch_size"], "xla": info["xla"],
                                   "precision": info["precision"], "replicas": info["replicas"],
                                   "workers": info["workers"], "runtime": info["runtime"],
                                   "scenario": info["scenario"], "pass": info["pass"]}
        assert (info["replicas"], info["workers"]) == (1, 1)  # the smoke run is one replica on one host
    assert not any("UNSERIALIZABLE" in str(b.get("params")) for b in run["benchmarks"])


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A run as the main job makes one (the overhead test included), of the longest case name, at a small input."""
    out = tmp_path_factory.mktemp("small")
    done = subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "bench"), "-p", "no:cacheprovider", "--models",
                           "resnet50_transfer", "--input-size", "small", "--mode", "infer", "--batch-sizes", "1",
                           "--precision", "float32,mixed_bfloat16", "--xla", "off", "--case-seconds", "0.2",
                           "--runtime", "keras", "--scenario", "steps",
                           "--no-trace",
                           "--benchmark-json", str(out / "run.json")],
                          capture_output=True, text=True, cwd=out, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out / "run.json", done.stdout


def test_pytest_benchmark_compare_groups_and_exports_by_case(small_run, tmp_path):
    saved, _ = small_run
    assert any(b["group"] == "harness overhead" for b in json.loads(saved.read_text())["benchmarks"])
    tool = shutil.which("pytest-benchmark") or [sys.executable, "-m", "pytest_benchmark.cli"]
    command = [tool] if isinstance(tool, str) else tool
    for group_by in ("param:case", "group"):
        out = tmp_path / group_by.replace(":", "_")
        done = subprocess.run([*command, "compare", str(saved), f"--group-by={group_by}", f"--csv={out}",
                               "--columns=median,rounds"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        files = list(tmp_path.glob(f"{out.name}*.csv"))
        assert files, done.stdout[-2000:]
        with open(files[0]) as f:
            rows = list(csv.DictReader(f))
        assert rows and all(float(row["median"]) > 0 for row in rows)
        if group_by == "param:case":
            assert "case=resnet50_transfer-infer-bs1-noxla-mixed_bfloat16" in done.stdout


def test_the_main_jobs_console_fits_120_columns_and_says_what_the_session_does(small_run):
    _, stdout = small_run
    lines = stdout.splitlines()
    ours = [line for line in lines if line.startswith("cnnbench:")]
    assert any("defaults line above does not apply" in line for line in ours)
    table = [line for line in lines if "test_case[" in line or line.startswith(("Name (time", "-----"))]
    assert any("resnet50_transfer-infer-bs1-noxla-mixed_bfloat16" in line for line in table)  # the longest name
    assert "Median" in next(line for line in table if line.startswith("Name")) and "StdDev" not in stdout
    medians = [float(line.split()[1].replace(",", "")) for line in table if "test_case[" in line]
    assert len(medians) > 1 and medians == sorted(medians)  # sorted by the column it shows
    pytest_benchmark_own = "benchmark: "  # its defaults line, which the suite does not write
    too_wide = [line for line in lines if len(line) > 120 and not line.startswith(pytest_benchmark_own)]
    assert not too_wide
