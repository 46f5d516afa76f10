"""The benchmark session: options, the case matrix, the shared harness and what goes into the saved JSON."""
import contextlib
import time

SESSION_STARTED = time.perf_counter()  # the budget and the time breakdown count TensorFlow's import too
CASE_FIELDS = ("model", "mode", "batch_size", "xla", "precision")  # the axes of a case, saved as its params
CONSOLE_COLUMNS = ("median", "rounds", "ops")  # pytest-benchmark's table at the end of a run

import pytest  # noqa: E402

from bench.cli import quiet_tensorflow  # noqa: E402

quiet_tensorflow()  # before anything imports TensorFlow: its start-up lines stay off the terminal

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
}

NUMBER_HELP = {  # dest: help, for the numeric options of bench.matrix.NUMBER_OPTIONS
    "min_rounds": "timed rounds per case at least (default 5; 3 in the smoke and CPU default runs)",
    "case_seconds": "time for the timed rounds of one case (default 2; 2.5 in the CPU default run, 0.6 in smoke)",
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
    from bench import device

    try:
        config._cnnbench_matrix = resolve(_options(config), device.gpu())
    except ValueError as err:
        raise pytest.UsageError(str(err)) from None
    given = " ".join(config.invocation_params.args)
    if hasattr(config.option, "benchmark_columns") and "--benchmark-columns" not in given:
        # pytest-benchmark's ten columns made a 230-character table; --benchmark-columns still asks for any
        config.option.benchmark_columns = list(CONSOLE_COLUMNS)
    if config.get_verbosity() == 0:  # -v keeps pytest's lines, -q its dots
        from bench.console import Progress
        config.pluginmanager.register(Progress(config), "cnnbench-progress")


def session_harness(config):
    """The session's harness, made on first need (the header, else collection): its ceilings, precisions and plan
    decide which cases the run parametrizes."""
    if not hasattr(config, "_cnnbench_harness"):
        from bench.harness import open_session

        tracer = None
        if tracing(config):
            from bench.trace import Tracer
            tracer = Tracer(config.getoption("cnnbench_trace_dir"), run_name(config),
                            every_batch_size=config.getoption("cnnbench_trace_every_batch_size"))
        config._cnnbench_harness = open_session(config._cnnbench_matrix, tracer=tracer, started=SESSION_STARTED)
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
    with harness.clock("probes"):
        harness.peaks.remeasure(harness.matrix.precisions)  # a second reading, with no model in memory: the higher is kept


def run_name(config) -> str:
    """The session's name: its traces folder, and `run_name` in the saved JSON, so the two can be matched."""
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
    machine_info["cnnbench"] = device.machine_info(peaks)
    if harness:
        machine_info["cnnbench"].update(device.precision_record(harness.speedups))


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_json(config, benchmarks, output_json):
    harness = getattr(config, "_cnnbench_harness", None)
    for bench in output_json["benchmarks"]:
        info = bench["extra_info"]
        if harness and info.get("achieved_tflops") is not None:  # MFU against the final ceiling, maybe raised since
            info["mfu"] = info["achieved_tflops"] * 1e12 / harness.peaks.flops(info["precision"])
        if "case" in info:  # plain JSON for pytest-benchmark's own tools, not the Case dataclass it cannot save
            bench["params"] = {"case": info["case"], **{key: info[key] for key in CASE_FIELDS}, "pass": info["pass"]}
        elif not bench.get("params"):  # the overhead test: `compare --group-by=param:case` needs a case in every one
            bench["params"] = {"case": bench["name"]}
    matrix = harness.matrix if harness else config._cnnbench_matrix
    output_json["cnnbench"] = {
        "schema_version": 2, "run_name": run_name(config),
        "skipped": harness.skipped if harness else [],
        "matrix": {"precisions": list(matrix.precisions), "input_size": matrix.input_size,
                   "min_rounds": matrix.min_rounds, "case_seconds": matrix.case_seconds,
                   "time_budget_minutes": matrix.time_budget, "passes": matrix.passes,
                   "latency_samples": matrix.latency_samples, "latency_seconds": matrix.latency_seconds},
    }
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
