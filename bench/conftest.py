"""The benchmark session: options, the case matrix, the shared harness and what goes into the saved JSON."""
import contextlib
import os
import sys
import time

SESSION_STARTED = time.perf_counter()  # the budget and the time breakdown count TensorFlow's import too
CONSOLE_COLUMNS = ("median", "rounds", "ops")  # pytest-benchmark's table at the end of a run

import pytest  # noqa: E402

from bench.scale import WORKER_TIMEOUT_S  # noqa: E402
from bench.matrix import (CPU_BUDGET_MINUTES, GPU_BUDGET_MINUTES, INPUT_SIZES, MODES, NUMBER_OPTIONS,  # noqa: E402
                          PRECISIONS, PRESETS, resolve)

OPTIONS = {  # option: (dest, help)
    "--models": ("models", "comma list of model names or wildcards ('resnet*')"),
    "--batch-sizes": ("batch_sizes", "comma list of batch sizes, for every mode and XLA setting"),
    "--xla": ("xla", "comma list of on, off, each at every batch size"),
    "--precision": ("precision", f"comma list of {', '.join(PRECISIONS)}; naming one runs it even where slow"),
    "--mode": ("mode", f"comma list of {', '.join(MODES)}"),
    "--input-size": ("input_size", f"{' or '.join(INPUT_SIZES)}: each model's default input or its small one"),
    "--bench-preset": ("preset", f"{', '.join(PRESETS)}: sets every axis at once (default adapts to the device)"),
    "--backend": ("backend", "tensorflow or jax: the Keras backend of the run (default: KERAS_BACKEND, else "
                  "tensorflow); one per run, as Keras binds one per process"),
    "--replicas": ("replicas", "comma list of data-parallel replica counts on this host (MirroredStrategy: a GPU "
                   "each, or logical CPU devices that share the cores); batch sizes are per replica; XLA off"),
}

NUMBER_HELP = {  # dest: help, for the numeric options of bench.matrix.NUMBER_OPTIONS
    "min_rounds": "timed rounds per case at least (default 5; 3 in the smoke and CPU default runs)",
    "case_seconds": "time for the timed rounds of one case (default 2; 4 in the CPU default run, 0.6 in smoke)",
    "time_budget": "minutes for the whole session: cases are planned in priority (each model's cheapest inference "
                   "case, then batch sizes, fast precisions, training, XLA) and what does not fit is skipped "
                   f"(default {CPU_BUDGET_MINUTES:g} on a CPU, {GPU_BUDGET_MINUTES:g} on a GPU, none with a named "
                   "preset; 0: no limit)",
    "passes": "time every case in N passes over the whole session (default 3 in the smoke run, else 1); the spread "
              "between passes is the noise --compare allows for between runs",
    "latency_samples": "the latency scenario: time at least N single-sample inference steps (batch 1) per case, "
                       "enough for a p90 from 64 and a p99 from 662",
    "latency_seconds": "time limit of the latency scenario per case (default 120); a slower case times fewer steps "
                       "and says so",
}


def pytest_addoption(parser):
    group = parser.getgroup("cnnbench", "cnnbench matrix")
    for flag, (dest, help_text) in OPTIONS.items():
        group.addoption(flag, dest=f"cnnbench_{dest}", default=None, help=help_text)
    for dest, help_text in NUMBER_HELP.items():
        group.addoption(f"--{dest.replace('_', '-')}", dest=f"cnnbench_{dest}", type=NUMBER_OPTIONS[dest][0],
                        default=None, help=help_text)
    # `--trace` (the default: a profiler trace of each step after its timed rounds) is pytest's own flag for
    # "pdb at every test"; pytest_configure below takes it over for the benchmarks.
    group.addoption("--no-trace", dest="cnnbench_no_trace", action="store_true", default=False,
                    help="capture no profiler traces (they are on by default; --trace says so explicitly)")
    group.addoption("--trace-dir", dest="cnnbench_trace_dir", default="results/traces",
                    help="where traces go: <trace-dir>/<run>/<case>/ (default results/traces)")
    group.addoption("--run-name", dest="cnnbench_run_name", default=None,
                    help="the run's name: its traces folder and journal (default <UTC time>-<host>); the workers of "
                    "a cluster share one (python -m bench.cluster gives it)")
    group.addoption("--worker-timeout", dest="cnnbench_worker_timeout", type=float, default=None,
                    help=f"in a cluster (TF_CONFIG): seconds a worker waits for the others to form the cluster and "
                    f"in each collective before the run stops (default {WORKER_TIMEOUT_S:g})")
    group.addoption("--resume", dest="cnnbench_resume", nargs="?", const="", default=None, metavar="RUN",
                    help="finish a run that was cut off: measure only the cases its journal has not finished, under "
                    "its name and options (RUN: a run name or journal path; default the newest unfinished run)")
    group.addoption("--resume-anyway", dest="cnnbench_resume_anyway", action="store_true", default=False,
                    help="resume even on another machine or commit (it mixes their numbers)")
    group.addoption("--trace-every-batch-size", dest="cnnbench_trace_every_batch_size", action="store_true",
                    default=False, help="trace every case, not only each step's first batch size (the others run "
                    "the same graph, with bigger tensors)")


def tracing(config) -> bool:
    return not config.getoption("cnnbench_no_trace")


def _options(config) -> dict:
    names = [dest for dest, _ in OPTIONS.values()] + list(NUMBER_OPTIONS)
    return {name: config.getoption(f"cnnbench_{name}") for name in names}


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    config.option.trace = False  # before pytest's debugging plugin reads it: here --trace means profiler traces
    config.addinivalue_line("markers", "cnnbench: a benchmark case of the cnnbench matrix")
    from bench.cli import UsageError, quiet_start

    try:  # Keras on the run's backend, before anything imports it: its start-up lines stay off the terminal
        quiet_start(config.getoption("cnnbench_backend"))
    except UsageError as err:
        raise pytest.UsageError(str(err)) from None
    from bench import device, scale
    from bench.engines import current as engine

    options = _options(config)
    resumed = config._cnnbench_resumed = _resumed_run(config)
    if resumed:
        options = _resumed_options(config, resumed)
    try:
        cluster = scale.cluster_from_env()
        options["workers"] = cluster.workers if cluster else 1
        config._cnnbench_matrix = resolve(options, device.gpu(), engine().XLA_SETTINGS)
        timeout = config.getoption("cnnbench_worker_timeout") or WORKER_TIMEOUT_S
        # before anything runs on TensorFlow: logical CPU devices for the replicas, the cluster joined
        config._cnnbench_scale = scale.Scale(config._cnnbench_matrix.replicas, cluster, device.gpu_count(), timeout,
                                             engine().NAME)
    except ValueError as err:
        raise pytest.UsageError(str(err)) from None
    if cluster and not cluster.is_chief:  # the chief saves the run; a worker's figures are in its log
        for name, off in (("benchmark_autosave", False), ("benchmark_save", None), ("benchmark_json", None)):
            if hasattr(config.option, name):
                setattr(config.option, name, off)
    _stop_after_the_current_case_on_a_signal(config)
    given = " ".join(config.invocation_params.args)
    if hasattr(config.option, "benchmark_columns") and "--benchmark-columns" not in given:
        # pytest-benchmark's ten columns made a 230-character table; --benchmark-columns still asks for any
        config.option.benchmark_columns = list(CONSOLE_COLUMNS)
    if config.get_verbosity() == 0:  # -v keeps pytest's lines, -q its dots
        from bench.console import Progress
        config.pluginmanager.register(Progress(config), "cnnbench-progress")


def storage(config) -> str:
    """pytest-benchmark's storage folder, where the journal goes too."""
    uri = str(config.getoption("benchmark_storage", default=None) or "file://./.benchmarks")
    return uri[len("file://"):] if uri.startswith("file://") else uri


def _resumed_run(config):
    """The journal's state of the run to resume, or None; a bad --resume is one line and exit 4."""
    wanted = config.getoption("cnnbench_resume")
    if wanted is None:
        return None
    from bench import journal

    folder = storage(config)
    if not wanted:
        path = journal.newest_unfinished(folder)
        if path is None:
            raise pytest.UsageError(f"--resume: no unfinished run under {journal.folder(folder)}/")
    else:
        path = wanted if os.path.exists(wanted) else journal.path_for(folder, wanted)
        if not os.path.exists(path):
            raise pytest.UsageError(f"--resume: no journal {path}")
    try:
        state = journal.State(path)
    except (OSError, ValueError) as err:
        raise pytest.UsageError(f"--resume: {err}") from None
    if state.complete:
        raise pytest.UsageError(f"--resume: {state.run_name} is complete; nothing to resume")
    _check_same_machine_and_commit(config, state)
    return state


def _check_same_machine_and_commit(config, state) -> None:
    from pytest_benchmark.utils import get_commit_info

    from bench import device
    from bench.engines import current as engine

    then = state.header
    machine = (then.get("machine_info") or {}).get("cnnbench", {})
    backend = machine.get("keras_backend", "tensorflow")
    if backend != engine().NAME:  # Keras has started on this run's backend: the user must name the other
        raise pytest.UsageError(f"--resume: {state.run_name} ran on {backend}; resume it with --backend {backend}")
    now = {"device": device.device_name(), "commit": get_commit_info().get("id")}
    was = {"device": machine.get("device"), "commit": (then.get("commit_info") or {}).get("id")}
    differ = [f"{key} {was[key]} then, {now[key]} now" for key in now if was[key] != now[key]]
    if differ and not config.getoption("cnnbench_resume_anyway"):
        raise pytest.UsageError(f"--resume: {state.run_name} ran elsewhere ({'; '.join(differ)}); resuming would "
                                "mix their numbers (--resume-anyway does it)")


def _resumed_options(config, state) -> dict:
    """The run's own options, its precisions as it kept them, and the budget it has left."""
    options = dict(state.header["options"])
    options["precision"] = ",".join(state.header["precisions"])
    budget = state.header.get("budget_minutes")
    if budget:
        options["time_budget"] = max(budget - state.elapsed_s / 60, 0.1)
    for name, value in state.header.get("trace_options", {}).items():
        setattr(config.option, f"cnnbench_{name}", value)
    config._cnnbench_run_name = state.run_name
    return options


STOP_SIGNALS = ("SIGTERM", "SIGINT")


def _stop_after_the_current_case_on_a_signal(config) -> None:
    """SIGTERM or a first Ctrl-C: finish the case at hand, then end the session, which saves what finished (marked
    incomplete); a second Ctrl-C stops at once."""
    import signal

    def stop(number, _frame):
        name = signal.Signals(number).name
        config._cnnbench_stopped = name
        signal.signal(number, signal.SIG_DFL if number != signal.SIGINT else signal.default_int_handler)

    config._cnnbench_stopped = None
    for name in STOP_SIGNALS:
        signal.signal(getattr(signal, name), stop)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    yield
    config = item.config
    harness = getattr(config, "_cnnbench_harness", None)
    if harness is not None and harness.lost and not config._cnnbench_stopped:
        config._cnnbench_stopped = "worker lost"
        item.session.shouldstop = f"{harness.lost}: the run stops"
        config.pluginmanager.get_plugin("terminalreporter").write_line(
            f"cnnbench: {harness.lost}: the run stops; the case at hand is marked failed, what finished is saved")
    stopped = config._cnnbench_stopped
    if stopped and not item.session.shouldstop:  # said here, outside the test's captured output
        config.pluginmanager.get_plugin("terminalreporter").write_line(
            f"cnnbench: {stopped}: stopped after the current case; what finished is saved, marked incomplete "
            "(pytest bench/ --resume measures the rest)")
        item.session.shouldstop = f"{stopped}: stopped after the current case"


def pytest_collection_modifyitems(config, items):
    resumed = getattr(config, "_cnnbench_resumed", None)
    if not resumed:
        return
    done = [item for item in items if hasattr(item, "callspec") and "case" in item.callspec.params
            and resumed.is_finished(item.callspec.params["case"].test_id, item.callspec.params["case"].id)]
    if done:
        config.hook.pytest_deselected(items=done)
        items[:] = [item for item in items if item not in done]


def _open_journal(config, harness) -> None:
    from pytest_benchmark.utils import get_commit_info

    from bench import journal

    resumed = config._cnnbench_resumed
    cluster = harness.scale.cluster
    if cluster and not cluster.is_chief:  # the chief's journal is the run's
        return
    harness.journal = journal.Journal(resumed.path if resumed else journal.path_for(storage(config), run_name(config)))
    if resumed:
        harness.elapsed_before = resumed.elapsed_s
        harness.skipped.extend(resumed.skipped)
        if harness.planner is not None:
            for visit in harness.planner.visits:
                if resumed.is_finished(visit.test_id, visit.id):
                    harness.planner.finish(visit, None)
        harness.journal.write("resume", elapsed_s=resumed.elapsed_s, argv=sys.argv)
        return
    import datetime

    matrix = harness.matrix
    harness.journal.write(
        "header", run_name=run_name(config), datetime=datetime.datetime.now(datetime.timezone.utc).isoformat(),
        argv=sys.argv, options=_options(config), precisions=list(matrix.precisions),
        budget_minutes=matrix.time_budget or None, machine_info={"cnnbench": harness.machine_record()},
        commit_info=get_commit_info(),
        trace_options={name: config.getoption(f"cnnbench_{name}")
                       for name in ("no_trace", "trace_dir", "trace_every_batch_size")},
        planned=[(visit.test_id, visit.id) for visit in matrix.visits()])


def session_harness(config):
    """The session's harness, made on first need (the header, else collection): its ceilings, precisions and plan
    decide which cases the run parametrizes."""
    if not hasattr(config, "_cnnbench_harness"):
        from bench.harness import open_session

        tracer = None
        scale = config._cnnbench_scale
        if tracing(config):
            import socket

            from bench.trace import Tracer
            cluster = scale.cluster
            tracer = Tracer(config.getoption("cnnbench_trace_dir"), run_name(config),
                            every_batch_size=config.getoption("cnnbench_trace_every_batch_size"),
                            worker=f"{socket.gethostname()}-worker{cluster.index}" if cluster else None)
        config._cnnbench_harness = open_session(config._cnnbench_matrix, tracer=tracer, started=SESSION_STARTED,
                                                scale=scale)
        _open_journal(config, config._cnnbench_harness)
    return config._cnnbench_harness


def pytest_report_header(config):
    from bench import console

    return console.header(session_harness(config), tracing(config))


def pytest_generate_tests(metafunc):
    if "case" in metafunc.fixturenames:
        visits = session_harness(metafunc.config).matrix.visits()
        metafunc.parametrize("case", visits, ids=[c.test_id for c in visits])


@pytest.fixture(scope="session")
def harness(request):
    harness = session_harness(request.config)
    yield harness
    harness.cache.clear()
    if harness.tracer is not None:
        harness.tracer.close()
    if request.config._cnnbench_stopped:  # a run told to stop ends now
        return
    with harness.clock("probes"):
        harness.peaks.remeasure(harness.matrix.precisions)  # a second reading, with no model in memory: the higher is kept


def run_name(config) -> str:
    """The session's name: its traces folder, and `run_name` in the saved JSON, so the two can be matched."""
    if not hasattr(config, "_cnnbench_run_name") and config.getoption("cnnbench_run_name"):
        config._cnnbench_run_name = config.getoption("cnnbench_run_name")
    if not hasattr(config, "_cnnbench_run_name"):
        import datetime
        import socket
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        config._cnnbench_run_name = f"{stamp}-{socket.gethostname()}"
    return config._cnnbench_run_name


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config, machine_info):
    from bench import device

    harness = getattr(config, "_cnnbench_harness", None)
    peaks = harness.peaks if harness else device.Peaks()
    with harness.clock("probes") if harness else contextlib.nullcontext():
        for precision in (harness.matrix if harness else config._cnnbench_matrix).precisions:
            peaks.flops(precision)
        peaks.bandwidth()
    machine_info["cnnbench"] = harness.machine_record() if harness else device.machine_info(peaks)


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_json(config, benchmarks, output_json):
    from bench.harness import case_params as harness_params

    harness = getattr(config, "_cnnbench_harness", None)
    for bench in output_json["benchmarks"]:
        info = bench["extra_info"]
        if harness and info.get("achieved_tflops") is not None:  # MFU against the final ceiling, maybe raised since
            ceiling = harness.peaks.flops(info["precision"]) * info.get("ceiling_devices", 1)
            info["mfu"] = info["achieved_tflops"] * 1e12 / ceiling
        bench["params"] = harness_params(bench)
    resumed = getattr(config, "_cnnbench_resumed", None)
    if resumed:  # the cases the run finished before it was cut off, from its journal
        output_json["benchmarks"][:0] = resumed.benchmarks
    from bench.scale import scaling

    infos = [bench["extra_info"] for bench in output_json["benchmarks"]]
    for index, result in scaling(infos).items():  # against the one-replica cases of the same run
        infos[index]["scaling"] = result
    matrix = harness.matrix if harness else config._cnnbench_matrix
    output_json["cnnbench"] = {
        "schema_version": 2, "run_name": run_name(config),
        "skipped": harness.skipped if harness else [],
        "matrix": {"precisions": list(matrix.precisions), "input_size": matrix.input_size,
                   "min_rounds": matrix.min_rounds, "case_seconds": matrix.case_seconds,
                   "time_budget_minutes": matrix.time_budget, "passes": matrix.passes,
                   "latency_samples": matrix.latency_samples, "latency_seconds": matrix.latency_seconds,
                   "replicas": list(matrix.replicas), "workers": matrix.workers},
    }
    stopped = getattr(config, "_cnnbench_stopped", None)
    if stopped:
        from bench.journal import count_finished

        planned = [(visit.test_id, visit.id) for visit in matrix.visits()]
        output_json["cnnbench"]["incomplete"] = {
            "reason": stopped, "planned": len(planned),
            "finished": count_finished(planned, output_json["benchmarks"], output_json["cnnbench"]["skipped"])}
    if resumed:
        output_json["cnnbench"]["resumed"] = {"sessions": 1 + sum(r.get("kind") == "resume" for r in resumed.records),
                                              "earlier_cases": len(resumed.benchmarks)}
    if harness:
        from bench.harness import plan_record
        output_json["cnnbench"]["plan"] = plan_record(harness)
        output_json["cnnbench"]["time_s"] = time_breakdown(harness.clock.session, time.perf_counter() - SESSION_STARTED)


def time_breakdown(phases: dict, total: float) -> dict:
    """Seconds per phase, "other" (start-up, collection, freeing models, pytest) and the session's total."""
    record = {phase: round(seconds, 2) for phase, seconds in phases.items()}
    record["other"] = round(total - sum(phases.values()), 2)
    record["total"] = round(total, 2)
    return record


def pytest_sessionfinish(session, exitstatus):
    """After pytest-benchmark saved the run (its hook wraps this one): the journal's end line."""
    harness = getattr(session.config, "_cnnbench_harness", None)
    if harness is None or harness.journal is None:
        return
    stopped = session.config._cnnbench_stopped
    failed = session.testsfailed or exitstatus not in (0, 5)
    harness._journal("end", complete=not stopped and not failed,
                     reason=stopped or (f"exit status {int(exitstatus)}" if failed else None))
    harness.journal.close()
