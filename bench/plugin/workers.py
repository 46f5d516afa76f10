"""Worker processes: the run's cases timed again in fresh processes (pytest children, one after another, never beside
each other on the cores), whose spread is the part of a figure that moves from one run to the next.

A process has a speed of its own (address-space layout, thread pools, the moment of the host it ran in), which the
rounds within one process cannot see; pyperf measures in 20 worker processes for that reason. `--processes N` times
every case in N processes; by default `--spread-workers` (2) time a sample of the run's comparisons again at its end,
and the report pools their spread by step class (bench.report.noise).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from itertools import zip_longest

from ..core.records import KERAS
from ..core.stats import FAST_STEP_MS
from .options import MATRIX_OPTIONS, NUMBER_HELP

WORKER_ENV = "CNNBENCH_WORKER"  # JSON: the run's ceilings, which a worker takes as its own (it probes nothing), and
# the seconds it has, after which it skips the cases left (its planner would plan the whole matrix, not its sample)
TEST_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "test_cases.py")
WORKER_TIMEOUT_FACTOR = 4  # a worker is stopped after this many times what it was planned to take, plus its start


def is_worker() -> bool:
    return WORKER_ENV in os.environ


def worker_peaks():
    """The run's ceilings, in a worker process; None elsewhere."""
    from ..measure import device
    return device.Peaks.given(json.loads(os.environ[WORKER_ENV])["peaks"]) if is_worker() else None


def worker_seconds() -> float | None:
    """The seconds a worker process has from its start, or None (no limit, or not a worker)."""
    return json.loads(os.environ[WORKER_ENV]).get("seconds") if is_worker() else None


def _kind(m) -> str:
    """What a comparison compares: a deployment runtime, a precision, XLA, or two models (the cost example)."""
    if m.case.runtime != KERAS:
        return "runtime"
    if m.case.precision != "float32":
        return "precision"
    return "xla" if m.case.xla else "models"


# What a worker's case costs over what it took in the run: the worker builds each model and traces each step anew
# (in the run a model's first case paid for that), and starts Python, Keras and TensorFlow (WORKER_START_S). On a
# 2-core Zen 4, 26 cases that took 22 s in the run took 46 s in each worker.
WORKER_COST = 2.1


def sample(measured: dict, seconds: float) -> list[str]:
    """Test ids a spread worker times, in the run's order (each twin before its case): comparisons of both step
    classes and every kind (runtime, precision, XLA, two models) in turn, the cheapest of each first, one per model
    and setting, while their cost in a worker fits `seconds`."""
    candidates = [m for m in measured.values() if m.twin_ids and m.median_s and m.case.pass_index == 1
                  and all(t in measured for t in m.twin_ids)]
    groups = {}
    for m in sorted(candidates, key=lambda m: m.seconds + sum(measured[t].seconds for t in m.twin_ids)):
        groups.setdefault((m.median_s * 1e3 >= FAST_STEP_MS, _kind(m)), []).append(m)  # the report's step classes
    chosen, seen, spent = set(), set(), 0.0
    for m in (m for turn in zip_longest(*groups.values()) for m in turn if m):  # every group in turn
        key = (m.case.model, m.case.runtime, m.case.precision, m.case.xla)
        cost = WORKER_COST * sum(measured[t].seconds for t in {m.case.test_id, *m.twin_ids} - chosen)
        if key in seen or spent + cost > seconds:
            continue
        seen.add(key)
        chosen |= {m.case.test_id, *m.twin_ids}
        spent += cost
    return [test_id for test_id in measured if test_id in chosen]


def worker_argv(options: dict, test_ids: list[str], json_path: str, storage: str, **override) -> list[str]:
    """A pytest child that times `test_ids` under the run's options (`override` replaces some), saving to
    `json_path`: no traces, no time budget, its journal in `storage`."""
    flags = {dest: flag for flag, (dest, _) in MATRIX_OPTIONS.items()}
    flags.update({dest: f"--{dest.replace('_', '-')}" for dest in NUMBER_HELP})
    given = {**{k: v for k, v in options.items() if v is not None}, "time_budget": 0, "spread_workers": 0,
             "processes": 1, **override}
    argv = [sys.executable, "-m", "pytest", *(f"{TEST_FILE}::test_case[{t}]" for t in test_ids)]
    for dest, value in given.items():
        argv += [flags[dest], str(value)]
    return argv + ["--no-trace", "-q", "-p", "no:cacheprovider", "--benchmark-json", json_path,
                   "--benchmark-storage", storage]


def run_workers(options: dict, test_ids: list[str], count: int, peaks: dict, planned_s: float, say,
                first_pass: int, extra: tuple = (), seconds: float | None = None, **override) -> list[dict]:
    """The saved benchmarks of `count` worker processes timing `test_ids` one after another, each marked with its
    process (1, 2, ...) and its passes numbered on from `first_pass`. A worker that fails or outlasts its time is
    said and left out: the run keeps what the others measured."""
    from ..measure.planning import WORKER_START_S

    found, scratch = [], tempfile.mkdtemp(prefix="cnnbench-workers-")
    env = {**os.environ, WORKER_ENV: json.dumps({"peaks": peaks, "seconds": seconds})}
    try:
        for index in range(1, count + 1):
            path = os.path.join(scratch, f"worker{index}.json")
            argv = [*worker_argv(options, test_ids, path, os.path.join(scratch, "storage"), **override), *extra]
            say(f"worker process {index} of {count}: {len(test_ids)} cases again")
            log = os.path.join(scratch, f"worker{index}.log")
            try:
                with open(log, "w") as out:
                    subprocess.run(argv, env=env, stdout=out, stderr=subprocess.STDOUT, check=False,
                                   timeout=WORKER_START_S + WORKER_TIMEOUT_FACTOR * planned_s)
            except subprocess.TimeoutExpired:
                say(f"worker process {index} outlasted {WORKER_TIMEOUT_FACTOR}x its planned time: left out")
                continue
            benchmarks = _read(path)
            if not benchmarks:
                say(f"worker process {index} saved nothing: {_last_line(log)}")
            for bench in benchmarks:
                info = bench["extra_info"]
                info["process"] = index
                info["pass"] = first_pass + (index - 1) * (info.get("passes") or 1) + (info.get("pass") or 1) - 1
            found.extend(benchmarks)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return found


def _read(path: str) -> list[dict]:
    try:
        with open(path) as f:
            return [b for b in json.load(f).get("benchmarks") or [] if "case" in b.get("extra_info", {})]
    except (OSError, ValueError):
        return []


def _last_line(log: str) -> str:
    try:
        with open(log) as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return "no log"
    return lines[-1] if lines else "no output"


def spread_seconds_each(count: int) -> float:
    """Seconds of the run's own cases a spread worker may time again (its start aside)."""
    from ..measure.planning import SPREAD_WORKER_S, WORKER_START_S

    return max(0.0, SPREAD_WORKER_S - WORKER_START_S) if count else 0.0
