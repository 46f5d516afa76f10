"""Serving scenarios the way MLPerf Inference measures them: its LoadGen (`mlperf_loadgen`) issues the queries, times
each one and judges the run, against an engine's inference call behind a batching queue.

- SingleStream: one query at a time, the next when the last is done; the figure is its 90th-percentile latency.
- Server: queries at Poisson-random times at a target rate; the figure is the highest rate whose 99th-percentile
  latency stays under a bound. LoadGen judges one rate a run, so the rate is searched (`find_rate`).
- Offline: every sample at once; the figure is samples/s.

Queries wait in a queue that a worker groups into batches of up to `max_batch` (waiting at most BATCH_TIMEOUT_S for
more), padded to the next of a few batch sizes traced beforehand, as TF Serving's allowed batch sizes are: a batch of
a size never seen would be traced while queries wait. A query's latency ends when its result is on the host.

Rules: "quick" sets LoadGen's settings directly (seconds a scenario; LoadGen judges validity against them, and the
report says the run is not at MLPerf's minimum duration); "mlperf" takes the official minimums through
TestSettings.FromConfig (600 s a scenario; a Server bound of its own, 15 ms for ResNet-50, unless one is named).
"""
from __future__ import annotations

import json
import math
import os
import queue
import re
import threading
import time
from dataclasses import dataclass, field

import numpy as np

RULES = ("quick", "mlperf")
BATCH_TIMEOUT_S = 0.001  # how long a batch waits for more queries: short beside any model's step here
SAMPLES = 64  # the QSL's synthetic samples, loaded before the test (LoadGen's performance sample count)
# The default Server bound: this many times the model's SingleStream p90 on the engine. A batch of 8 takes 2-5x a
# single sample's time on a 2-core CPU, and queueing needs the rest; MLPerf's ResNet-50 bound, 15 ms, is a similar
# multiple of a datacenter accelerator's single-sample latency.
BOUND_MULTIPLE = 5.0
BOUND_FLOOR_S = 0.010  # LoadGen's own default Server bound (its mlperf.conf, for a model it has no entry for)
# Quick durations. A Server run is valid only with enough queries for LoadGen's early-stopping estimate of p99 (about
# 460 with none over the bound), so a rate's last trial runs that many; the search's trials are short.
QUICK = {"single-stream": {"min_duration_ms": 2000, "min_query_count": 64},
         "server": {"min_duration_ms": 2000, "min_query_count": 500},
         "server-search": {"min_duration_ms": 1000, "min_query_count": 32},
         "offline": {"min_duration_ms": 2000, "min_query_count": 1}}
SEARCH_TRIALS = 6  # bisection steps of the Server rate after its bracket
CONFIRM_MARGIN, CONFIRM_TRIALS = 0.8, 4  # the confirming trials' rates: 0.8x the knee, stepping down
# ... unless a trial's p99 met the bound and LoadGen's early stopping only wanted more queries (500 run: it forgives
# none over the bound; 662, one): the same rate runs again with what LoadGen asked for, and this much more, as a
# slower rate does not help when the queries over the bound came from the shared machine, not the queue (ResNet-50
# on OpenVINO, 2-core Zen 3: p99 176-203 ms within 207 ms at 12.6 down to 6.4 queries/s, each "needs 162 more").
CONFIRM_EXTRA_QUERIES = 1.25
LG_NAMES = {"single-stream": "SingleStream", "server": "Server", "offline": "Offline"}


def probe(infer, samples: np.ndarray, batch: int, calls: int = 5) -> float:
    """Median seconds of a call at `batch`: what LoadGen is told to expect, so that its runs are sized."""
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        infer(samples[:batch])
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def batch1_latency(infer, samples: np.ndarray, calls: int = 64, seconds: float = 2.0) -> dict:
    """The same inference at batch 1, called back to back without LoadGen or the queue (`calls`, or as many as
    `seconds` allow, 10 at least): what SingleStream adds to it is the query's way in and out."""
    times = []
    started = time.perf_counter()
    while len(times) < calls and (len(times) < 10 or time.perf_counter() - started < seconds):
        begun = time.perf_counter()
        infer(samples[len(times) % len(samples):][:1])
        times.append(time.perf_counter() - begun)
    return {"back_to_back_p50_ms": float(np.percentile(times, 50)) * 1e3,
            "back_to_back_p90_ms": float(np.percentile(times, 90)) * 1e3, "back_to_back_calls": len(times)}


def buckets(max_batch: int) -> tuple[int, ...]:
    """The batch sizes a padded batch takes: powers of two up to, and including, `max_batch`."""
    sizes = [1]
    while sizes[-1] * 2 < max_batch:
        sizes.append(sizes[-1] * 2)
    return tuple(dict.fromkeys([*sizes, max_batch]))


class Batcher:
    """LoadGen's system under test: `issue(query samples)` queues them; a worker thread groups them into batches,
    runs `infer(batch)` (numpy in, result on the host on return) and reports each query complete."""

    def __init__(self, infer, samples: np.ndarray, max_batch: int, lg):
        self.infer, self.samples, self.max_batch, self.lg = infer, samples, max_batch, lg
        self.sizes = buckets(max_batch)
        self.queue: queue.Queue = queue.Queue()
        self.formed: list[int] = []  # the size of each batch formed (before padding)
        self.error: BaseException | None = None
        self.worker = threading.Thread(target=self._serve, daemon=True)

    def warm(self) -> None:
        for size in self.sizes:  # each padded size traced (compiled) before any query waits on it
            self.infer(self.samples[:size])

    def issue(self, query_samples) -> None:
        for sample in query_samples:
            self.queue.put(sample)

    def flush(self) -> None:
        pass

    def _batch(self) -> list | None:
        first = self.queue.get()
        if first is None:
            return None
        group = [first]
        deadline = time.perf_counter() + BATCH_TIMEOUT_S
        while len(group) < self.max_batch:
            try:
                item = self.queue.get(timeout=max(0.0, deadline - time.perf_counter()))
            except queue.Empty:
                break
            if item is None:
                self.queue.put(None)
                break
            group.append(item)
        return group

    def _serve(self) -> None:
        while (group := self._batch()) is not None:
            try:
                if self.error is None:
                    size = next(s for s in self.sizes if s >= len(group))
                    indices = [s.index for s in group] + [group[-1].index] * (size - len(group))
                    self.infer(self.samples[indices])
                    self.formed.append(len(group))
            except BaseException as err:  # noqa: BLE001  (reported after the test; LoadGen must still finish)
                self.error = err
            self.lg.QuerySamplesComplete([self.lg.QuerySampleResponse(s.id, 0, 0) for s in group])

    def __enter__(self):
        self.worker.start()
        return self

    def __exit__(self, *exc):
        self.queue.put(None)
        self.worker.join()


@dataclass
class Trial:
    """One LoadGen test and what it judged."""
    scenario: str
    valid: bool
    reason: str | None  # why LoadGen judged it INVALID
    figures: dict  # LoadGen's own, from its detail log
    batches: dict  # formed batch size -> count
    seconds: float
    target_qps: float | None = None
    log_dir: str | None = None
    notes: list = field(default_factory=list)
    short_of: int | None = None  # queries LoadGen's early stopping still wanted, the latency being within the bound

    def record(self) -> dict:
        return {"scenario": self.scenario, "valid": self.valid, "reason": self.reason, "target_qps": self.target_qps,
                "seconds": round(self.seconds, 3), "batches": self.batches, "log_dir": self.log_dir, **self.figures}


def summary(record: dict) -> str:
    """A scenario's result in a line, for the console: its figure and LoadGen's verdict."""
    verdict = "VALID" if record.get("valid") else f"INVALID: {(record.get('reason') or '')[:80]}"
    if record.get("scenario") == "server":
        trials = f"{len(record.get('trials') or [])} trials"
        if record.get("qps_at_bound"):
            return (f"{record['qps_at_bound']:.4g} queries/s within {record['bound_ms']:.3g} ms (p99 "
                    f"{record['p99_ms']:.3g} ms), {trials}, {verdict}")
        return f"not servable within {record.get('bound_ms', 0):.3g} ms at any rate tried, {trials}"
    if record.get("scenario") == "offline":
        return f"{record.get('samples_per_s') or 0:.4g} samples/s, {verdict}"
    return f"p90 {record.get('p90_ms') or 0:.3g} ms, {record.get('queries')} queries, {verdict}"


def read_detail(path: str) -> dict:
    """LoadGen's detail log: one `:::MLLOG {json}` line per key."""
    found = {}
    with open(path) as f:
        for line in f:
            if line.startswith(":::MLLOG "):
                entry = json.loads(line[len(":::MLLOG "):])
                found[entry["key"]] = entry["value"]
    return found


def _ms(ns) -> float | None:
    return None if ns in (None, 0) else ns / 1e6


def figures_of(detail: dict) -> dict:
    """The figures the suite records, in ms and samples/s."""
    def percentile(p):
        return _ms(detail.get(f"result_{p:.2f}_percentile_latency_ns"))
    return {"p50_ms": percentile(50), "p90_ms": percentile(90), "p99_ms": percentile(99),
            "max_ms": _ms(detail.get("result_max_latency_ns")), "mean_ms": _ms(detail.get("result_mean_latency_ns")),
            "queries": detail.get("result_query_count"),
            "samples_per_s": detail.get("result_samples_per_second") or detail.get("result_completed_samples_per_sec"),
            "scheduled_qps": detail.get("result_scheduled_samples_per_sec"),
            "early_stopping_p90_ms": _ms(detail.get("early_stopping_latency_ss")),
            "early_stopping_p99_ms": _ms(detail.get("early_stopping_latency_ms")),
            "duration_ms": detail.get("effective_min_duration_ms"),
            "bound_ms": _ms(detail.get("effective_target_latency_ns")),
            "loadgen_version": detail.get("loadgen_version")}


def _line(detail: dict, key: str) -> str:
    """A text field of LoadGen's detail log in one line ('' when absent or null)."""
    return " ".join(str(detail.get(key) or "").split())


def more_queries(detail: dict) -> int | None:
    """How many more queries LoadGen's early stopping asked for, when it did."""
    more = (re.search(r"at least (\d+) more queries", _line(detail, "early_stopping_result"))
            if detail.get("early_stopping_met") is False else None)
    return int(more.group(1)) if more else None


def short_of(detail: dict) -> int | None:
    """The queries an INVALID run wanted when nothing else was wrong with it: its latency within the bound, its
    duration and query count met, only LoadGen's early-stopping estimate short of queries."""
    if detail.get("result_validity") == "VALID" or _line(detail, "result_invalid_reason"):
        return None
    met = ("result_perf_constraints_met", "result_min_duration_met", "result_min_queries_met")
    return more_queries(detail) if all(detail.get(key) is not False for key in met) else None


def invalid_reason(detail: dict) -> str | None:
    """LoadGen's reasons, in one line; None when it judged the run VALID."""
    if detail.get("result_validity") == "VALID":
        return None
    reasons = []
    if detail.get("result_perf_constraints_met") is False:
        reasons.append("latency over the bound")
    if detail.get("result_min_duration_met") is False:
        reasons.append("min duration not met")
    if detail.get("result_min_queries_met") is False:
        reasons.append("min queries not met")
    if detail.get("early_stopping_met") is False:
        more = more_queries(detail)
        reasons.append(f"early stopping needs {more} more queries, all within the bound" if more
                       else f"early stopping: {_line(detail, 'early_stopping_result')}")
    extra = _line(detail, "result_invalid_reason")
    if extra:
        reasons.append(extra)
    return "; ".join(reasons) or f"LoadGen judged it {detail.get('result_validity', 'INVALID')}"


class LoadGen:
    """Runs trials of one engine's inference: a QSL of SAMPLES synthetic samples and a Batcher per trial."""

    def __init__(self, infer, sample_shape: tuple, max_batch: int, rules: str, log_root: str, model_name: str):
        import mlperf_loadgen

        self.lg = mlperf_loadgen
        self.infer, self.max_batch, self.rules = infer, max_batch, rules
        self.samples = np.random.default_rng(3).random((SAMPLES, *sample_shape), dtype=np.float32)
        self.log_root, self.model_name = log_root, model_name
        self.trials: list[Trial] = []
        Batcher(infer, self.samples, max_batch, self.lg).warm()

    def settings(self, scenario: str, *, expected_latency_s=None, target_qps=None, bound_s=None, quick=None,
                 min_queries=None):
        lg = self.lg
        settings = lg.TestSettings()
        settings.scenario = getattr(lg.TestScenario, LG_NAMES[scenario])
        if self.rules == "mlperf" and quick != "server-search":
            # LoadGen's own mlperf.conf (conf_type 0): the official minimums, and the model's entry where it has one
            settings.FromConfig("", self.model_name, LG_NAMES[scenario], 0)
        else:
            for key, value in QUICK[quick or scenario].items():
                setattr(settings, key, value)
        settings.mode = lg.TestMode.PerformanceOnly
        if expected_latency_s:
            settings.single_stream_expected_latency_ns = int(expected_latency_s * 1e9)
        if target_qps:
            if scenario == "server":
                settings.server_target_qps = float(target_qps)
            else:
                settings.offline_expected_qps = float(target_qps)
        if bound_s:
            settings.server_target_latency_ns = int(bound_s * 1e9)
        if min_queries:
            settings.min_query_count = max(settings.min_query_count, int(min_queries))
        return settings

    def trial(self, scenario: str, name: str, settings, target_qps=None) -> Trial:
        lg = self.lg
        log_dir = os.path.join(self.log_root, name)
        os.makedirs(log_dir, exist_ok=True)
        log = lg.LogSettings()
        log.log_output.outdir = log_dir
        log.log_output.copy_summary_to_stdout = False
        batcher = Batcher(self.infer, self.samples, 1 if scenario == "single-stream" else self.max_batch, lg)
        qsl = lg.ConstructQSL(SAMPLES, SAMPLES, lambda indices: None, lambda indices: None)
        sut = lg.ConstructSUT(batcher.issue, batcher.flush)
        started = time.perf_counter()
        try:
            with batcher:
                lg.StartTestWithLogSettings(sut, qsl, settings, log)
        finally:
            lg.DestroySUT(sut)
            lg.DestroyQSL(qsl)
        seconds = time.perf_counter() - started
        if batcher.error is not None:
            raise batcher.error
        detail = read_detail(os.path.join(log_dir, "mlperf_log_detail.txt"))
        counts = np.bincount(batcher.formed) if batcher.formed else []
        found = Trial(scenario, detail.get("result_validity") == "VALID", invalid_reason(detail), figures_of(detail),
                      {str(size): int(n) for size, n in enumerate(counts) if n}, seconds, target_qps, log_dir,
                      short_of=short_of(detail))
        self.trials.append(found)
        return found

    def single_stream(self, expected_latency_s: float) -> Trial:
        return self.trial("single-stream", "single-stream",
                          self.settings("single-stream", expected_latency_s=expected_latency_s))

    def offline(self, samples_per_s: float) -> Trial:
        # LoadGen issues expected QPS x min duration samples at once: overestimate it, or the run ends too soon
        return self.trial("offline", "offline", self.settings("offline", target_qps=samples_per_s * 1.5),
                          target_qps=samples_per_s * 1.5)

    def server(self, qps: float, bound_s: float, index: int, search: bool, min_queries=None) -> Trial:
        return self.trial("server", f"server-{index:02d}-{qps:.4g}qps",
                          self.settings("server", target_qps=qps, bound_s=bound_s,
                                        quick="server-search" if search else None, min_queries=min_queries),
                          target_qps=qps)

    def find_rate(self, bound_s: float, ceiling_qps: float) -> tuple[Trial | None, list[Trial]]:
        """The highest rate whose p99 is within `bound_s`, searched between 0 and `ceiling_qps` (what Offline
        reached): short trials judged by their p99 bracket it and bisect it, on a log scale; then trials long enough
        for LoadGen's early stopping confirm it, stepping down until one is VALID, or running longer where LoadGen
        only wanted more queries (CONFIRM_EXTRA_QUERIES). (best VALID trial or None, all)"""
        trials = []

        def within(qps, search=True, min_queries=None):
            trial = self.server(qps, bound_s, len(trials) + 1, search, min_queries)
            trials.append(trial)
            p99 = trial.figures.get("p99_ms")
            return (trial.valid if not search else p99 is not None and p99 <= bound_s * 1e3), trial

        high = max(ceiling_qps, 1.0)
        low = None
        qps = high * 0.8
        for _ in range(4):  # bracket: a rate that is served within the bound
            ok, _trial = within(qps)
            if ok:
                low = qps
                break
            high, qps = qps, qps / 3
        if low is None:
            return None, trials
        for _ in range(SEARCH_TRIALS if self.rules == "quick" else 2):
            if high / low < 1.1:
                break
            middle = math.sqrt(low * high)
            ok, _trial = within(middle)
            low, high = (middle, high) if ok else (low, middle)
        rate = low * CONFIRM_MARGIN  # early stopping forgives few queries over the bound: start below the knee
        queries = None
        for _ in range(CONFIRM_TRIALS):  # confirm, in trials LoadGen can judge
            ok, trial = within(rate, search=False, min_queries=queries)
            if ok:
                return trial, trials
            if trial.short_of:
                queries = math.ceil((trial.figures.get("queries") or 0) + CONFIRM_EXTRA_QUERIES * trial.short_of)
            else:
                rate, queries = rate * CONFIRM_MARGIN, None
        return None, trials
