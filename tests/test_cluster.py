"""python -m bench.cluster: two real workers on this machine, one saved run; and a worker killed mid-run."""
import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from bench.engines.shared import xplane_files
from bench.plugin import cluster
from bench.report.__main__ import main as report_main
from bench.report.runs import load_run
from bench.report.select import View
from bench.report.tables import scaling

pytestmark = pytest.mark.slow  # every test here starts TensorFlow processes

ARGS = ("--models", "resnet20", "--mode", "train", "--precision", "float32", "--case-seconds", "0.5")
TIMEOUT_S = 30


def _private_network_or_skip():
    if subprocess.run([*cluster._unshare_command(), "true"], capture_output=True).returncode != 0:
        if os.environ.get("CNNBENCH_REQUIRE_CLUSTER"):
            pytest.fail("no network namespaces here, and CNNBENCH_REQUIRE_CLUSTER is set")
        pytest.skip("no network namespaces here: bench.cluster would need --shared-network")


def _start(tmp_path, *pytest_args):
    _private_network_or_skip()
    log = open(tmp_path / "out.log", "w")
    return subprocess.Popen([sys.executable, "-m", "bench.cluster", "--workers", "2", "--timeout", str(TIMEOUT_S),
                             "--log-dir", str(tmp_path / "logs"), "--", *ARGS, "--benchmark-autosave",
                             f"--benchmark-storage=file://{tmp_path / 'store'}", "--trace-dir",
                             str(tmp_path / "traces"), "-p", "no:cacheprovider", *pytest_args],
                            stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)


def _saved(tmp_path):
    return list((tmp_path / "store").glob("*/*.json"))


def test_bad_cluster_options_are_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "bench.cluster", "--workers", "1", "--", "--models", "lenet5"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == ("python -m bench.cluster: error: --workers must be 2 or more, got 1 (one worker is a plain "
                           "pytest bench/ run) (see --help)\n")


@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("cluster")
    process = _start(tmp_path, "--batch-sizes", "8")
    process.wait(timeout=600)
    return tmp_path, process.returncode, (tmp_path / "out.log").read_text()


def test_two_workers_make_one_saved_run_with_their_scaling(cluster_run, tmp_path):
    folder, code, out = cluster_run
    assert code == 0, out[-3000:]
    [saved] = _saved(folder)  # the chief's: the other worker saves nothing
    run = json.loads(saved.read_text())
    assert run["machine_info"]["cnnbench"]["cluster"]["workers"] == 2
    assert run["machine_info"]["cnnbench"]["cluster"]["hosts"] == ["127.0.0.1", "127.0.0.1"]
    infos = {b["extra_info"]["case"]: b["extra_info"] for b in run["benchmarks"] if "case" in b["extra_info"]}
    alone, together = infos["resnet20-train-bs8-noxla-float32"], infos["resnet20-train-bs8-noxla-float32-w2"]
    assert (alone["workers"], alone["cluster"]["concurrent"]) == (1, True)
    assert (together["workers"], together["replicas"], together["global_batch"]) == (2, 2, 16)
    assert together["scaling"]["baseline"] == alone["case"] and together["scaling"]["efficiency"] > 0
    assert [path.name for path in (folder / "store" / "journal").iterdir()] == [f"{run['cnnbench']['run_name']}.jsonl"]
    assert "worker 1: exit 0" in out and "worker 0 (chief, saves the run): exit 0" in out
    # the chief's trace of the case alone, named by host and worker (two profiling workers crash TensorFlow)
    traces = xplane_files(together["trace_dir"])
    assert [os.path.basename(p) for p in traces] == [f"{os.uname().nodename}-worker0.xplane.pb"]
    assert together["top_ops"]
    _, headers, rows = scaling(View([load_run(str(saved))]))
    shown = [dict(zip(headers, row)) for row in rows]
    assert [(r["replicas"], r["workers"], r["global batch"]) for r in shown] == [(1, 1, 8), (2, 2, 16)]
    assert shown[1]["efficiency"].startswith(f"{together['scaling']['efficiency']:.2f} ±")
    assert report_main([str(saved), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "plots" / "scaling.png").exists() and "Scaling" in (tmp_path / "report.md").read_text()


def test_a_killed_worker_ends_the_run_with_one_message_and_a_whole_json(tmp_path):
    process = _start(tmp_path, "--batch-sizes", "4,8,16", "--case-seconds", "3", "--no-trace")
    journal = tmp_path / "store" / "journal"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:  # the first case finished: the run is going
        if journal.exists() and any('"kind": "case"' in p.read_text() for p in journal.iterdir()):
            break
        time.sleep(0.2)
    assert process.poll() is None, (tmp_path / "out.log").read_text()[-3000:]
    workers = [p for p in psutil.Process(process.pid).children(recursive=True) if "pytest" in " ".join(p.cmdline())]
    [victim] = [p for p in workers if '"index": 1' in p.environ().get("TF_CONFIG", "")]
    killed = time.monotonic()
    victim.send_signal(signal.SIGKILL)
    process.wait(timeout=TIMEOUT_S + cluster.STOP_GRACE_S + 30)
    took = time.monotonic() - killed
    out = (tmp_path / "out.log").read_text()
    assert process.returncode != 0
    assert took < TIMEOUT_S + cluster.STOP_GRACE_S, out[-3000:]
    assert "cnnbench: worker 1 was lost (" in out
    assert "bench.cluster: worker 1: killed by SIGKILL" in out
    [saved] = _saved(tmp_path)
    run = json.loads(saved.read_text())  # whole: it parses
    [failed] = [skip for skip in run["cnnbench"]["skipped"] if skip.get("failed")]
    assert failed["reason"].startswith("worker 1 was lost")  # the case at hand, on one worker or both
    assert run["cnnbench"]["incomplete"]["reason"] == "worker lost"
    assert not any(worker.is_running() and worker.status() != psutil.STATUS_ZOMBIE for worker in workers)
