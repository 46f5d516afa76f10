"""Nothing measured is lost: real runs cut off by SIGTERM and SIGKILL, reported from what they saved or journaled,
then finished with --resume."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT

from bench.core import journal
from bench.report.__main__ import main as report_main

pytestmark = pytest.mark.slow  # every test here starts TensorFlow processes

CASES = 12  # 3 models x 2 batch sizes x 2 precisions, inference without XLA
ARGS = ("--models", "lenet5,conv5x5,resnet20", "--mode", "infer", "--runtime", "keras", "--xla", "off",
        "--batch-sizes", "1,8", "--precision", "float32,mixed_bfloat16", "--input-size", "small",
        "--case-seconds", "0.5", "--scenario", "steps", "--spread-workers", "0")


def _start(tmp_path, *extra):
    log = open(tmp_path / "out.log", "a")
    return subprocess.Popen([sys.executable, "-m", "pytest", str(ROOT / "bench"), "-p", "no:cacheprovider", *ARGS,
                             "--benchmark-autosave", f"--benchmark-storage=file://{tmp_path / 'store'}",
                             "--trace-dir", str(tmp_path / "traces"), *extra],
                            stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)


def _cut_off_after(process, tmp_path, cases: int, signal_number) -> None:
    """Send the signal once `cases` cases have started (a line each); the run must end within a minute."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        lines = (tmp_path / "out.log").read_text().splitlines()
        if sum(line.startswith("[") and "/" in line.split("]")[0] for line in lines) >= cases:
            break
        time.sleep(0.2)
    assert process.poll() is None, "the run ended before it could be cut off"
    process.send_signal(signal_number)
    process.wait(timeout=60)


def _saved(tmp_path):
    return sorted((tmp_path / "store").glob("*/*.json"), key=os.path.getmtime)


def _report(tmp_path, *refs):
    out = tmp_path / "report"
    assert report_main([*refs, "--storage", str(tmp_path / "store"), "--out", str(out), "--no-plots"]) == 0
    return (out / "report.md").read_text()


def test_sigterm_saves_what_finished_marked_incomplete(tmp_path, capsys):
    process = _start(tmp_path)
    _cut_off_after(process, tmp_path, 5, signal.SIGTERM)
    assert process.returncode == 2  # pytest's "interrupted"
    assert "cnnbench: SIGTERM: stopped after the current case" in (tmp_path / "out.log").read_text()
    [saved] = _saved(tmp_path)
    run = json.loads(saved.read_text())
    cases = [b for b in run["benchmarks"] if "case" in b["extra_info"]]
    incomplete = run["cnnbench"]["incomplete"]
    assert incomplete == {"reason": "SIGTERM", "planned": CASES, "finished": len(cases)} and 5 <= len(cases) < CASES
    md = _report(tmp_path)
    assert f"incomplete: {len(cases)} of {CASES} cases (SIGTERM)" in md
    assert all(f"| {b['extra_info']['model']}" in md for b in cases)
    traces = tmp_path / "traces" / run["cnnbench"]["run_name"]
    traced = {b["extra_info"]["case"] for b in cases if b["extra_info"].get("trace_dir")}
    assert traced and {p.name for p in traces.iterdir()} == traced  # no folder of a case cut off
    assert not (tmp_path / ".traces-staging").exists()


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory):
    """A run killed with SIGKILL after four cases, its journal's last line then cut in half as a crash mid-write
    would leave it."""
    tmp_path = tmp_path_factory.mktemp("killed")
    process = _start(tmp_path)
    _cut_off_after(process, tmp_path, 4, signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL and not _saved(tmp_path)
    [path] = journal.journals(str(tmp_path / "store"))
    with open(path, "a") as f:
        f.write('{"kind": "case", "benchmark": {"name": "test_case[resnet')
    return tmp_path, path


def test_after_sigkill_the_journal_alone_gives_the_report(killed_run, capsys):
    tmp_path, path = killed_run
    state = journal.State(path)
    assert "cut off" in capsys.readouterr().err
    finished = len(state.benchmarks)
    assert 3 <= finished < CASES and state.incomplete()["finished"] == finished  # the fourth was running
    md = _report(tmp_path)
    assert f"incomplete: {finished} of {CASES} cases (killed: the journal has no end line)" in md
    assert "Traceback" not in capsys.readouterr().err


def test_resume_is_refused_on_another_commit(killed_run, tmp_path):
    source, path = killed_run
    records = [json.loads(line) for line in open(path).read().splitlines()[:-1]]
    records[0]["commit_info"] = {"id": "0" * 40}
    other = tmp_path / "other.jsonl"
    other.write_text("".join(json.dumps(r) + "\n" for r in records))
    done = subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "bench"), "-p", "no:cacheprovider",
                           "--resume", str(other)], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 4
    assert "resuming would mix their numbers (--resume-anyway does it)" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_resume_measures_only_the_rest_and_completes_the_run(killed_run):
    tmp_path, path = killed_run
    before = journal.State(path)
    done_before = {b["param"] for b in before.benchmarks}
    process = _start(tmp_path, "--resume")
    assert process.wait(timeout=600) == 0, (tmp_path / "out.log").read_text()[-3000:]
    [saved] = _saved(tmp_path)
    run = json.loads(saved.read_text())
    params = [b["param"] for b in run["benchmarks"] if "case" in b["extra_info"]]
    assert len(params) == len(set(params)) == CASES and done_before <= set(params)
    assert "incomplete" not in run["cnnbench"] and run["cnnbench"]["run_name"] == before.run_name
    assert run["cnnbench"]["resumed"]["earlier_cases"] == len(done_before)
    assert journal.State(path).complete
    md = _report(tmp_path)
    assert md.count(before.run_name) >= 1 and "incomplete" not in md
    assert f"| {CASES} " in md.split("*Precisions")[0]
