"""The benchmark session: options, the case matrix, the shared harness and what goes into the saved JSON."""
import pytest

from bench.cli import quiet_tensorflow

quiet_tensorflow()  # before anything imports TensorFlow: its start-up lines stay off the terminal

from bench.matrix import INPUT_SIZES, MODES, NUMBER_OPTIONS, PRECISIONS, PRESETS, resolve  # noqa: E402

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
    "case_seconds": "time for the timed rounds of one case (default 2; 0.5 in the CPU default run, 0.6 in smoke)",
    "max_step_seconds": "skip a case whose step needs longer than this even at the measured FLOP/s ceiling "
                        "(default 1.2 in the CPU default run, no limit otherwise; 0: no limit)",
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
    # `--trace` (the default: a profiler trace of each case after its timed rounds) is pytest's own flag for
    # "pdb at every test"; pytest_configure below takes it over for the benchmarks.
    group.addoption("--no-trace", dest="cnnbench_no_trace", action="store_true", default=False,
                    help="capture no profiler traces (they are on by default; --trace says so explicitly)")
    group.addoption("--trace-dir", dest="cnnbench_trace_dir", default="results/traces",
                    help="where traces go: <trace-dir>/<run>/<case>/ (default results/traces)")


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


def pytest_report_header(config):
    from bench import device

    matrix = config._cnnbench_matrix
    passes = f", each in {matrix.passes} passes over the session" if matrix.passes > 1 else ""
    return (f"cnnbench: {len(matrix.cases())} cases of {len(matrix.models)} models{passes} on "
            f"{device.device_name()}; traces {'on' if tracing(config) else 'off'}")


def pytest_generate_tests(metafunc):
    if "case" in metafunc.fixturenames:
        visits = metafunc.config._cnnbench_matrix.visits()
        metafunc.parametrize("case", visits, ids=[c.test_id for c in visits])


@pytest.fixture(scope="session")
def harness(request):
    from bench.harness import Harness
    from bench.timing import Budget

    config = request.config
    matrix = config._cnnbench_matrix
    tracer = None
    if tracing(config):
        from bench.trace import Tracer
        tracer = Tracer(config.getoption("cnnbench_trace_dir"), run_name(config))
    config._cnnbench_harness = Harness(matrix, Budget(min_rounds=matrix.min_rounds, max_seconds=matrix.case_seconds),
                                       tracer=tracer)
    yield config._cnnbench_harness
    config._cnnbench_harness.cache.clear()
    config._cnnbench_harness.peaks.remeasure()  # a second reading, with no model in memory: the higher is kept


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
    for precision in config._cnnbench_matrix.precisions:
        peaks.flops(precision)
    peaks.bandwidth()
    machine_info["cnnbench"] = device.machine_info(peaks)


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_json(config, benchmarks, output_json):
    harness = getattr(config, "_cnnbench_harness", None)
    if harness:  # MFU against the final ceiling, which the end of the session may have raised
        for bench in output_json["benchmarks"]:
            info = bench["extra_info"]
            if info.get("achieved_tflops") is not None:
                info["mfu"] = info["achieved_tflops"] * 1e12 / harness.peaks.flops(info["precision"])
    output_json["cnnbench"] = {
        "schema_version": 2, "run_name": run_name(config),
        "skipped": harness.skipped if harness else [],
        "matrix": {"input_size": config._cnnbench_matrix.input_size, "min_rounds": config._cnnbench_matrix.min_rounds,
                   "case_seconds": config._cnnbench_matrix.case_seconds,
                   "max_step_seconds": config._cnnbench_matrix.max_step_seconds,
                   "passes": config._cnnbench_matrix.passes,
                   "latency_samples": config._cnnbench_matrix.latency_samples,
                   "latency_seconds": config._cnnbench_matrix.latency_seconds},
    }
