"""One benchmark session's state: the matrix and strategies resolved from the options, the harness once made, the
run's name and journal, and why the run was told to stop. It lives in pytest's config stash (`of(config)`)."""
from __future__ import annotations

import datetime
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field

import pytest

from ..core import journal
from ..engines.distribute import WORKER_TIMEOUT_S
from . import workers
from .options import matrix_options, storage, trace_options
from .resume import resumed_options, resumed_run

STOP_SIGNALS = ("SIGTERM", "SIGINT")
KEY = pytest.StashKey["Session"]()


def of(config) -> Session | None:
    """The session of a `pytest bench/` run; None before pytest_configure, or when it stopped on bad input."""
    return config.stash.get(KEY, None)


@dataclass
class Session:
    config: object
    started: float  # perf_counter at the plugin's import: the budget and the time breakdown count start-up too
    matrix: object  # bench.measure.matrix.Matrix
    scale: object  # bench.engines.distribute.Scale
    options: dict  # the options the run was resolved from (a resumed run's own)
    run_name: str
    resumed: journal.State | None = None
    stopped: str | None = None  # a signal's name, or "worker lost": the session ends after the case at hand
    harness: object | None = field(default=None, repr=False)  # bench.measure.harness.Harness, made on first need
    worker_benchmarks: list = field(default_factory=list, repr=False)  # saved by the worker processes (workers.py)

    @classmethod
    def configure(cls, config, started: float) -> Session:
        """Keras started on the run's backend, the options resolved, the cluster joined: before anything runs on
        TensorFlow, since tf.distribute wants its devices set up first. Bad input: pytest.UsageError, one line."""
        from ..core.cli import UsageError
        from ..engines import current as engine
        from ..engines import runtimes, start
        from ..engines.distribute import Scale, cluster_from_env
        from ..measure import device
        from ..measure.matrix import resolve

        try:  # Keras on the run's backend, before anything imports it: its start-up lines stay off the terminal
            start(config.getoption("cnnbench_backend"))
        except UsageError as err:
            raise pytest.UsageError(str(err)) from None
        options, resumed = matrix_options(config), resumed_run(config)
        if resumed:
            options = resumed_options(config, resumed)
        try:
            cluster = cluster_from_env()
            installed = runtimes.installed()  # Keras exports for them through TensorFlow
            matrix = resolve({**options, "workers": cluster.workers if cluster else 1}, device.gpu(),
                             engine().XLA_SETTINGS, installed, installed if engine().NAME == "tensorflow" else ())
            timeout = config.getoption("cnnbench_worker_timeout") or WORKER_TIMEOUT_S
            scale = Scale(matrix.replicas, cluster, device.gpu_count(), timeout, engine().NAME)
        except ValueError as err:
            raise pytest.UsageError(str(err)) from None
        name = resumed.run_name if resumed else config.getoption("cnnbench_run_name") or _new_run_name()
        session = cls(config, started, matrix, scale, options, name, resumed)
        config.stash[KEY] = session
        session._stop_after_the_current_case_on_a_signal()
        return session

    @property
    def tracing(self) -> bool:
        return not self.config.getoption("cnnbench_no_trace")

    @property
    def is_worker(self) -> bool:
        """A cluster's worker other than the chief, which saves the run: a worker's figures are in its log."""
        cluster = self.scale.cluster
        return cluster is not None and not cluster.is_chief

    def open_harness(self):
        """The session's harness, made on first need (the header, else collection): its ceilings, precisions and
        plan decide which cases the run parametrizes."""
        if self.harness is None:
            from ..measure.planning import open_session

            tracer = None
            if self.tracing:
                from ..measure.trace import Tracer
                cluster = self.scale.cluster
                tracer = Tracer(self.config.getoption("cnnbench_trace_dir"), self.run_name,
                                every_case=self.config.getoption("cnnbench_trace_every_case"),
                                worker=f"{socket.gethostname()}-worker{cluster.index}" if cluster else None,
                                profiles=cluster is None or cluster.is_chief)
            self.harness = open_session(self.matrix, tracer=tracer, started=self.started, scale=self.scale,
                                        export_root=self.config.getoption("cnnbench_export_cache"),
                                        peaks=workers.worker_peaks(), seconds=workers.worker_seconds(),
                                        serving_root=os.path.join(self.config.getoption("cnnbench_trace_dir"),
                                                                  self.run_name))
            self._open_journal()
        return self.harness

    def time_in_workers(self, say) -> None:
        """At the session's end, before the save: with --processes N, every case it measured again in N-1 worker
        processes (each process the case's seconds: the ratios pooled over them are N times as firm); else its spread
        workers time a sample of its comparisons."""
        from ..measure.planning import SPREAD_WORKER_S

        harness, matrix = self.harness, self.matrix
        if harness is None or self.stopped or self.scale.cluster is not None or workers.is_worker():
            return
        harness.peaks.bandwidth()  # measured once, here, for the workers to take as given
        if matrix.processes > 1:
            count, override, seconds = matrix.processes - 1, {}, None
            ids = [test_id for test_id, m in harness.measured.items() if m.median_s]
        else:
            count, seconds = matrix.spread_workers, SPREAD_WORKER_S  # a worker running late skips the rest
            override = {"case_seconds": matrix.case_seconds, "passes": 1}
            ids = workers.sample(harness.measured, workers.spread_seconds_each(count)) if count else []
        if not ids:
            return
        export_cache = self.config.getoption("cnnbench_export_cache")
        with harness.clock("workers"):
            self.worker_benchmarks = workers.run_workers(
                self.options, ids, count, harness.peaks.record(), sum(harness.measured[t].seconds for t in ids),
                say, matrix.passes + 1, ("--export-cache", export_cache) if export_cache else (), seconds, **override)

    def _open_journal(self) -> None:
        if self.is_worker:  # the chief's journal is the run's
            return
        from pytest_benchmark.utils import get_commit_info

        harness, resumed = self.harness, self.resumed
        harness.journal = journal.Journal(resumed.path if resumed else journal.path_for(storage(self.config),
                                                                                        self.run_name))
        if resumed:
            harness.elapsed_before = resumed.elapsed_s
            harness.skipped.extend(resumed.skipped)
            if harness.planner is not None:
                for visit in harness.planner.visits:
                    if resumed.is_finished(visit.test_id, visit.id):
                        harness.planner.finish(visit, None)
            harness.journal.write("resume", elapsed_s=resumed.elapsed_s, argv=sys.argv)
            return
        matrix = harness.matrix
        harness.journal.write(
            "header", run_name=self.run_name, datetime=datetime.datetime.now(datetime.timezone.utc).isoformat(),
            argv=sys.argv, options=matrix_options(self.config), precisions=list(matrix.precisions),
            budget_minutes=matrix.time_budget or None, machine_info={"cnnbench": harness.machine_record()},
            commit_info=get_commit_info(), trace_options=trace_options(self.config),
            planned=[(visit.test_id, visit.id) for visit in matrix.visits()])

    def close_journal(self, exitstatus, failed_tests: int) -> None:
        """The journal's end line: complete, or why not."""
        harness = self.harness
        if harness is None or harness.journal is None:
            return
        failed = failed_tests or exitstatus not in (0, 5)
        harness.journal_write("end", complete=not self.stopped and not failed,
                              reason=self.stopped or (f"exit status {int(exitstatus)}" if failed else None))
        harness.journal.close()

    def _stop_after_the_current_case_on_a_signal(self) -> None:
        """SIGTERM or a first Ctrl-C: finish the case at hand, then end the session, which saves what finished
        (marked incomplete); a second Ctrl-C stops at once."""
        def stop(number, _frame):
            self.stopped = signal.Signals(number).name
            signal.signal(number, signal.SIG_DFL if number != signal.SIGINT else signal.default_int_handler)

        for name in STOP_SIGNALS:
            signal.signal(getattr(signal, name), stop)

    def seconds(self) -> float:
        return time.perf_counter() - self.started


def _new_run_name() -> str:
    """<UTC time>-<host>: the traces folder, the journal, and `run_name` in the saved JSON, so they can be matched."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{socket.gethostname()}"
