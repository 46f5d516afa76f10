"""The options of `pytest bench/`."""
from __future__ import annotations

from models.registry import INPUT_SIZES

from ..engines.distribute import WORKER_TIMEOUT_S
from ..measure.matrix import CPU_BUDGET_MINUTES, GPU_BUDGET_MINUTES, MODES, NUMBER_OPTIONS, PRECISIONS, PRESETS

MATRIX_OPTIONS = {  # option: (dest, help); each is a field of the options bench.measure.matrix.resolve reads
    "--models": ("models", "comma list of model names or wildcards ('resnet*')"),
    "--batch-sizes": ("batch_sizes", "comma list of batch sizes, for every mode and XLA setting"),
    "--xla": ("xla", "comma list of on, off, each at every batch size"),
    "--precision": ("precision", f"comma list of {', '.join(PRECISIONS)}, int8 (the deployment runtimes' own "
                    "post-training quantization); naming one runs it even where slow"),
    "--mode": ("mode", f"comma list of {', '.join(MODES)}"),
    "--input-size": ("input_size", f"{' or '.join(INPUT_SIZES)}: each model's default input or its small one"),
    "--bench-preset": ("preset", f"{', '.join(PRESETS)}: sets every axis at once (default adapts to the device)"),
    "--backend": ("backend", "tensorflow or jax: the Keras backend of the run (default: KERAS_BACKEND, else "
                  "tensorflow); one per run, as Keras binds one per process"),
    "--runtime": ("runtime", "comma list of keras (the backend's own steps), litert, onnxruntime, openvino: where "
                  "inference runs; the deployment runtimes take each model as Keras exports it, in float32 and int8 "
                  "(default: keras, and on a CPU's default run every installed runtime at batch 1)"),
    "--scenario": ("scenario", "comma list of steps (the suite's own: steps of a batch back to back), "
                   "single-stream, server, offline (MLPerf's LoadGen serving each model's float32 inference on each "
                   "engine of the run; default steps, and on a default run SingleStream for every model with Server "
                   "and Offline for a few, on the Keras backend)"),
    "--loadgen-rules": ("loadgen_rules", "quick (seconds a scenario, the default) or mlperf (LoadGen's official "
                        "minimums: 600 s a scenario)"),
    "--replicas": ("replicas", "comma list of data-parallel replica counts on this host (MirroredStrategy: a GPU "
                   "each, or logical CPU devices that share the cores); batch sizes are per replica; XLA off"),
}

NUMBER_HELP = {  # dest: help, for the numeric options of bench.measure.matrix.NUMBER_OPTIONS
    "min_rounds": "timed rounds per case at least (default 5; 3 in the smoke and CPU default runs)",
    "case_seconds": "time for the timed rounds of one case (default 2; 1.5 in the CPU default run, 0.6 in smoke)",
    "time_budget": "minutes for the whole session: cases are planned in priority (each model's first inference "
                   "case, then its other batch sizes, XLA at the first, the fast precisions, training, the runtimes, "
                   "serving) and what does not fit is skipped "
                   f"(default {CPU_BUDGET_MINUTES:g} on a CPU, {GPU_BUDGET_MINUTES:g} on a GPU, none with a named "
                   "preset; 0: no limit)",
    "passes": "time every case in N passes over the whole session (default 3 in the smoke run, else 1); the spread "
              "between passes is the noise --compare allows for between runs",
    "processes": "time every case in N processes, one after another: the run's own and N-1 fresh worker processes "
                 "(pytest children), each with the case's seconds and 1/N of --time-budget; figures are pooled over "
                 "them and their spread is the noise the report allows for between runs (default 1)",
    "spread_workers": "with one process: N fresh worker processes that time a sample of the run's paired "
                      "comparisons again at its end (about 30 s each), so that the report's intervals hold the "
                      "spread between processes measured on this machine (default 2; 0: none, and the report falls "
                      "back to constants)",
    "latency_samples": "the latency scenario: time at least N single-sample inference steps (batch 1) per case, "
                       "enough for a p90 from 64 and a p99 from 662",
    "latency_bound_ms": "Server scenario: the p99 latency bound of the rate searched for (default: "
                        "5x the model's SingleStream p90 on the engine, at least 10 ms)",
    "latency_seconds": "time limit of the latency scenario per case (default 120); a slower case times fewer steps "
                       "and says so",
}
TRACE_OPTIONS = ("no_trace", "trace_dir", "trace_every_case")  # a resumed run keeps its own


def add_options(parser) -> None:
    group = parser.getgroup("cnnbench", "cnnbench matrix")
    for flag, (dest, help_text) in MATRIX_OPTIONS.items():
        group.addoption(flag, dest=f"cnnbench_{dest}", default=None, help=help_text)
    for dest, help_text in NUMBER_HELP.items():
        group.addoption(f"--{dest.replace('_', '-')}", dest=f"cnnbench_{dest}", type=NUMBER_OPTIONS[dest][0],
                        default=None, help=help_text)
    # `--trace` (the default: a profiler trace of each step after its timed rounds) is pytest's own flag for
    # "pdb at every test"; the plugin's pytest_configure takes it over for the benchmarks.
    group.addoption("--no-trace", dest="cnnbench_no_trace", action="store_true", default=False,
                    help="capture no profiler traces (they are on by default; --trace says so explicitly)")
    group.addoption("--trace-dir", dest="cnnbench_trace_dir", default="results/traces",
                    help="where traces go: <trace-dir>/<run>/<case>/ (default results/traces)")
    group.addoption("--export-cache", dest="cnnbench_export_cache", default=None,
                    help="where the deployment runtimes' exports are kept for later runs (default "
                    "$CNNBENCH_EXPORT_CACHE, else ~/.cache/cnnbench/exports)")
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
    group.addoption("--trace-every-case", dest="cnnbench_trace_every_case", action="store_true",
                    default=False, help="trace every case, not only the first of each model's mode on each runtime and "
                    "scale (float32 without XLA at the first batch size, where the run has it)")


def matrix_options(config) -> dict:
    """The options bench.measure.matrix.resolve reads, as given (None where not)."""
    names = [dest for dest, _ in MATRIX_OPTIONS.values()] + list(NUMBER_OPTIONS)
    return {name: config.getoption(f"cnnbench_{name}") for name in names}


def trace_options(config) -> dict:
    return {name: config.getoption(f"cnnbench_{name}") for name in TRACE_OPTIONS}


def storage(config) -> str:
    """pytest-benchmark's storage folder, where the journal goes too."""
    uri = str(config.getoption("benchmark_storage", default=None) or "file://./.benchmarks")
    return uri[len("file://"):] if uri.startswith("file://") else uri
