"""The benchmark matrix: which cases a run measures, from the command-line options and the device."""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field, replace

from models.registry import COST_PARTNER, INPUT_SIZES

from ..core.records import MODES, SCENARIOS, STEPS
from ..engines.runtimes import KERAS, RUNTIMES
from ..engines.runtimes import PRECISIONS as RUNTIME_PRECISIONS

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")  # of the Keras backend's own steps
XLA_VALUES = {"on": True, "off": False}
RUNTIME_CHOICES = (KERAS, *RUNTIMES)
SCENARIO_CHOICES = (STEPS, *SCENARIOS)
LOADGEN_RULES = ("quick", "mlperf")
SERVING_MAX_BATCH = 8  # the largest batch the serving queue forms (Server, Offline)


@dataclass(frozen=True)
class Case:
    model: str
    mode: str
    batch_size: int
    xla: bool
    precision: str
    pass_index: int = 1  # which of the matrix's passes over the session times it (1 also traces it)
    replicas: int = 1  # data-parallel replicas on this host's devices (bench.engines.distribute); per-replica batch
    workers: int = 1  # hosts of a tf.distribute cluster (TF_CONFIG) that run the case together
    runtime: str = KERAS  # or a deployment runtime (bench.engines.runtimes), which has no XLA axis
    scenario: str = STEPS  # or a LoadGen scenario, whose batch size is the largest the serving queue forms

    @property
    def id(self) -> str:
        served = "" if self.scenario == STEPS else f"-{self.scenario}"
        if self.runtime != KERAS:
            return f"{self.model}-{self.mode}-bs{self.batch_size}-{self.runtime}-{self.precision}{served}"
        scale = (f"-r{self.replicas}" if self.replicas > 1 else "") + (f"-w{self.workers}" if self.workers > 1 else "")
        return (f"{self.model}-{self.mode}-bs{self.batch_size}-{'xla' if self.xla else 'noxla'}-{self.precision}"
                f"{scale}{served}")

    @property
    def test_id(self) -> str:
        return self.id if self.pass_index == 1 else f"{self.id}-pass{self.pass_index}"


def partners_first(names) -> list[str]:
    """The models in their order, but for a cost example's first module, moved before its second (inception3a_naive
    sorts after inception3a): the second is timed beside it (models.registry.COST_EXAMPLES)."""
    ordered = []
    for name in names:
        partner = COST_PARTNER.get(name)
        if partner in names and partner not in ordered:
            ordered.append(partner)
        if name not in ordered:
            ordered.append(name)
    return ordered


def grid(batch_sizes: dict, xla=(False, True)) -> dict:
    """mode -> {xla: batch sizes}, the same batch sizes under each XLA setting."""
    return {mode: {setting: tuple(sizes) for setting in xla} for mode, sizes in batch_sizes.items()}


@dataclass(frozen=True)
class Matrix:
    models: tuple[str, ...]
    grid: dict = field(default_factory=dict)  # mode -> {xla: batch sizes}: what is measured, per mode and setting
    precisions: tuple[str, ...] = ("float32",)  # candidates: a run keeps float32 and those the device runs fast
    input_size: str = "default"
    explicit_precisions: bool = False  # named by the user: run even where the device is slow at it
    min_rounds: int = 5
    case_seconds: float = 2.0  # time for the timed rounds of one case
    time_budget: float | None = None  # minutes for the whole session; bench.measure.plan fits the cases to it
    latency_samples: int | None = None  # the latency scenario: this many timed steps at batch 1 (inference)
    latency_seconds: float = 120.0  # ... within this time per case
    passes: int = 1  # times each case is visited, spread over the session; each pass gets 1/passes of case_seconds
    processes: int = 1  # every case timed in this many processes (the run's and fresh workers'), each its share
    spread_workers: int = 2  # with one process: fresh workers that time a sample of the run's comparisons again
    replicas: tuple[int, ...] = (1,)  # data-parallel replicas on this host (MirroredStrategy)
    workers: int = 1  # a cluster's size (TF_CONFIG): its cases run on 1 worker (each alone) and on all of them
    keras: bool = True  # the Keras backend's own cases (not when --runtime leaves keras out)
    runtimes: tuple[str, ...] = ()  # deployment runtimes: inference of each model exported by Keras (CPU)
    runtime_precisions: tuple[str, ...] = RUNTIME_PRECISIONS
    runtime_batches: tuple[int, ...] | None = None  # None: the inference batch sizes
    steps: bool = True  # the suite's own step cases (not when --scenario leaves steps out)
    scenarios: tuple[str, ...] = ()  # LoadGen's serving scenarios, for each engine of the run (float32)
    loadgen_rules: str = "quick"  # or "mlperf": the official minimum durations (bench.measure.serving)
    latency_bound_ms: float | None = None  # Server's p99 bound; None: a multiple of the SingleStream p90
    serving_models: tuple[str, ...] | None = None  # the models Server and Offline serve; None: every one
    serving_xla: bool = False  # the served Keras step compiled with XLA: on an engine that always compiles (JAX)
    serve_runtimes: bool = True  # the scenarios for the deployment runtimes too (the default run: the backend's)

    def scales(self) -> list[tuple[int, int]]:
        """(replicas, workers) of the cases: the one-replica baseline first, which a scaled case is compared with."""
        return [(replicas, 1) for replicas in self.replicas] + ([(1, self.workers)] if self.workers > 1 else [])

    def cases(self) -> list[Case]:
        """Adjacent cases share a model, precision and scale, so one built model serves them all. A case's reference
        twins (float32, XLA off) come before it, so that its rounds can be timed beside theirs. XLA is not measured
        across replicas: Keras leaves jit_compile off under tf.distribute."""
        return [case for model in partners_first(self.models)
                for case in (self._keras_cases(model) + self._runtime_cases(model) if self.steps else [])
                + self._scenario_cases(model)]

    def _keras_cases(self, model: str) -> list[Case]:
        if not self.keras or not self.precisions:
            return []
        precisions = sorted(self.precisions, key=lambda p: p != "float32")
        return [Case(model, mode, batch, xla, precision, replicas=replicas, workers=workers)
                for precision in precisions for replicas, workers in self.scales()
                for mode, settings in self.grid.items() for xla, sizes in sorted(settings.items())
                for batch in sizes if not (xla and (replicas > 1 or workers > 1))]

    def _runtime_cases(self, model: str) -> list[Case]:
        """After the model's Keras cases, whose float32 inference steps are still built to be timed beside them."""
        if "infer" not in self.grid or self.workers > 1:
            return []
        batches = self.runtime_batches or sorted({b for sizes in self.grid["infer"].values() for b in sizes})
        return [Case(model, "infer", batch, False, precision, runtime=runtime)
                for runtime in self.runtimes for precision in self.runtime_precisions for batch in batches]

    def _scenario_cases(self, model: str) -> list[Case]:
        """After the model's step cases, whose float32 inference steps serve them: SingleStream at batch 1, Server
        and Offline up to SERVING_MAX_BATCH, on the Keras backend (with XLA where it only compiles) and each runtime."""
        if self.workers > 1 or self.replicas != (1,):
            return []
        return [Case(model, "infer", 1 if scenario == "single-stream" else SERVING_MAX_BATCH,
                     self.serving_xla and runtime == KERAS, "float32", runtime=runtime, scenario=scenario)
                for runtime in ([KERAS] if self.keras else []) + list(self.runtimes if self.serve_runtimes else ())
                for scenario in self.scenarios
                if scenario == "single-stream" or self.serving_models is None or model in self.serving_models]

    def visits(self) -> list[Case]:
        """Every case once per pass, pass after pass: the passes of a case see the machine at different times."""
        return [replace(case, pass_index=index) for index in range(1, self.passes + 1) for case in self.cases()]


ALL = ("*",)
SMOKE_MODELS = ("lenet5", "resnet20", "conv5x5", "conv5x5_bottleneck")
QUICK_MODELS = ("lenet5", "alexnet", "vgg16", "resnet18", "resnet50", "resnet50v2", "resnet56", "googlenet",
                "inception_v3", "conv5x5", "conv5x5_bottleneck", "inception3a_naive", "inception3a")
GPU_BATCHES = (1, 8, 32, 64, 128, 256)
# The default run serves every model in SingleStream on the Keras backend (a valid p90 in seconds) and these in
# Server and Offline: the smallest, a CIFAR ResNet and the ImageNet workhorse, rates three orders of magnitude apart.
# A Server rate is confirmed by 500 queries at least (LoadGen's early stopping for p99): ResNet-50's took 4 min of
# a 2-core CPU at 4.4 queries/s, VGG-16's would take about 10 (on paper), half a CPU run's budget.
SERVING_MODELS = ("lenet5", "resnet20", "resnet50")
SERVED = dict(scenarios=SCENARIOS, serve_runtimes=False)
CPU_BUDGET_MINUTES = 20.0
GPU_BUDGET_MINUTES = 60.0  # the README's "A default run on a GPU" says what fits and why an hour

# The whole zoo on a CPU, planned to 20 minutes (bench.measure.plan). XLA is a candidate at batch 1 only and training
# without XLA: compiling a training step with XLA took 10 s (VGG-19) to 71 s (ResNet-152) on a 2-core CPU, and the
# compiled step was no faster (ResNet-152 6.1 s vs 3.2 s). 1.5 s of timed rounds a case at most: on a 2-core Zen 4,
# 2.5 s (up to 5 after a long first call) left 6 models' mission cases and 51 of 92 runtime cases outside the budget;
# the first calls (tracing, graph optimisation, compiles), which no setting of the rounds shortens, took 37% of it.
# The deployment runtimes that are installed join it at batch 1 (resolve): a deployment's first question.
CPU_DEFAULT = Matrix(ALL, {"infer": {False: (1, 8), True: (1,)}, "train": {False: (2,)}}, precisions=PRECISIONS,
                     min_rounds=3, case_seconds=1.5, time_budget=CPU_BUDGET_MINUTES, runtime_batches=(1,),
                     serving_models=SERVING_MODELS, **SERVED)

# Each preset is a Matrix with its models still as patterns and its candidate precisions.
PRESETS = {
    "smoke": lambda gpu: Matrix(SMOKE_MODELS, grid({"infer": (1, 8), "train": (8,)}), input_size="small",
                                min_rounds=3, case_seconds=0.6, passes=3),
    "quick": lambda gpu: Matrix(QUICK_MODELS, grid({"infer": (1, 32) if gpu else (1, 8),
                                                    "train": (32,) if gpu else (2,)}), precisions=PRECISIONS),
    "full": lambda gpu: Matrix(ALL, grid({"infer": GPU_BATCHES, "train": GPU_BATCHES[1:] if gpu else (2, 8)}),
                               precisions=PRECISIONS),
    # What a plain run measures: the full matrix within an hour on a GPU, CPU_DEFAULT on a CPU.
    "default": lambda gpu: replace(PRESETS["full"](gpu), time_budget=GPU_BUDGET_MINUTES,
                                   serving_models=SERVING_MODELS, **SERVED) if gpu
    else CPU_DEFAULT,
}


# The numeric options: dest -> (type, test, what the value must be); each sets the Matrix field of its name.
NUMBER_OPTIONS = {
    "min_rounds": (int, lambda v: v >= 1, "at least 1"),
    "case_seconds": (float, lambda v: v > 0, "positive"),
    "time_budget": (float, lambda v: v >= 0, "0 (no limit) or more minutes"),
    "passes": (int, lambda v: v >= 1, "at least 1"),
    "processes": (int, lambda v: v >= 1, "at least 1"),
    "spread_workers": (int, lambda v: v >= 0, "0 (none) or more"),
    "latency_samples": (int, lambda v: v >= 1, "at least 1"),
    "latency_seconds": (float, lambda v: v > 0, "positive"),
    "latency_bound_ms": (float, lambda v: v > 0, "positive"),
}


def _split(text: str, option: str) -> list[str]:
    items = [part.strip() for part in text.split(",")]
    if not all(items):
        raise ValueError(f"{option} takes a comma list with no empty items, got {text!r}")
    return items


def parse_counts(text: str, option: str) -> tuple[int, ...]:
    """A comma list of positive integers (batch sizes, replicas), sorted, each once."""
    counts = []
    for item in _split(text, option):
        if not item.isdigit() or int(item) < 1:
            raise ValueError(f"{option} takes positive integers, got {item!r}")
        counts.append(int(item))
    return tuple(sorted(set(counts)))


def parse_choice(text: str, option: str, choices) -> tuple[str, ...]:
    items = _split(text, option)
    for item in items:
        if item not in choices:
            raise ValueError(f"{option} takes {', '.join(choices)}; got {item!r}")
    return tuple(dict.fromkeys(items))


def _steps(matrix: Matrix, options: dict, xla_settings) -> Matrix:
    """The modes, XLA settings and batch sizes (an engine that always compiles has XLA at every batch size)."""
    if options.get("mode"):
        modes = parse_choice(options["mode"], "--mode", MODES)
        matrix = replace(matrix, grid={mode: matrix.grid[mode] for mode in modes if mode in matrix.grid})
    if options.get("xla"):
        xla = tuple(XLA_VALUES[v] for v in parse_choice(options["xla"], "--xla", XLA_VALUES))
        every_size = {mode: sorted({b for sizes in settings.values() for b in sizes})
                      for mode, settings in matrix.grid.items()}
        matrix = replace(matrix, grid=grid(every_size, xla))
    if options.get("batch_sizes"):
        sizes = parse_counts(options["batch_sizes"], "--batch-sizes")
        matrix = replace(matrix, grid={mode: dict.fromkeys(settings, sizes) for mode, settings in matrix.grid.items()},
                         runtime_batches=None)
    if False not in xla_settings and not options.get("xla"):
        matrix = replace(matrix, grid={mode: {True: tuple(sorted({b for sizes in settings.values() for b in sizes}))}
                                       for mode, settings in matrix.grid.items()})
    return matrix


def _engines(matrix: Matrix, options: dict, installed_runtimes) -> Matrix:
    """The deployment runtimes and LoadGen's scenarios."""
    if options.get("runtime"):
        named = parse_choice(options["runtime"], "--runtime", RUNTIME_CHOICES)
        absent = [name for name in named if name != KERAS and name not in installed_runtimes]
        if absent:
            raise ValueError(f"--runtime {absent[0]}: not installed (the deploy extra: pip install -e '.[deploy]')")
        matrix = replace(matrix, keras=KERAS in named, runtimes=tuple(n for n in named if n != KERAS))
    if options.get("scenario"):
        named = parse_choice(options["scenario"], "--scenario", SCENARIO_CHOICES)
        matrix = replace(matrix, steps=STEPS in named, scenarios=tuple(s for s in SCENARIOS if s in named),
                         serving_models=None, serve_runtimes=True)
        if matrix.scenarios and importlib.util.find_spec("mlperf_loadgen") is None:
            raise ValueError("--scenario: MLPerf's LoadGen is not installed (pip install mlcommons-loadgen)")
    elif "infer" not in matrix.grid or importlib.util.find_spec("mlperf_loadgen") is None:
        matrix = replace(matrix, scenarios=())  # serving is inference; a run without LoadGen has steps alone
    if options.get("loadgen_rules"):
        matrix = replace(matrix, loadgen_rules=parse_choice(options["loadgen_rules"], "--loadgen-rules",
                                                            LOADGEN_RULES)[0])
    return matrix


def _settings(matrix: Matrix, options: dict) -> Matrix:
    """Precisions, scale, input size and the numeric options."""
    if options.get("precision"):
        named = parse_choice(options["precision"], "--precision", (*PRECISIONS, "int8"))
        matrix = replace(matrix, precisions=tuple(p for p in named if p in PRECISIONS), explicit_precisions=True,
                         runtime_precisions=tuple(p for p in named if p in RUNTIME_PRECISIONS))
    if options.get("replicas"):
        matrix = replace(matrix, replicas=parse_counts(options["replicas"], "--replicas"))
    if options.get("workers", 1) > 1:
        if matrix.replicas != (1,):
            raise ValueError("--replicas does not combine with a cluster (TF_CONFIG): each worker's GPUs are its "
                             "replicas")
        matrix = replace(matrix, workers=options["workers"])
    if options.get("input_size"):
        matrix = replace(matrix, input_size=parse_choice(options["input_size"], "--input-size", INPUT_SIZES)[0])
    for dest, (_, valid, wanted) in NUMBER_OPTIONS.items():
        value = options.get(dest)
        if value is not None:
            if not valid(value):
                raise ValueError(f"--{dest.replace('_', '-')} must be {wanted}, got {value}")
            matrix = replace(matrix, **{dest: value})
    return replace(matrix, time_budget=matrix.time_budget or None)  # 0: no limit


def resolve(options: dict, gpu, xla_settings=(False, True), installed_runtimes=(), default_runtimes=()) -> Matrix:
    """The matrix for these options (None where not given) on this device (`gpu` is falsy on a CPU), for an engine
    with these XLA settings. On an engine that always compiles (JAX) every batch size of a mode is measured with
    XLA; its XLA-off cases are in the matrix only when `--xla` names them, and are skipped with the reason.
    The default run on a CPU adds `default_runtimes` (the deployment runtimes installed, on TensorFlow); `--runtime`
    names them, and naming one not in `installed_runtimes` is an error.

    Raises ValueError with a one-line message for bad input.
    """
    import models

    preset = options.get("preset") or "default"
    if preset not in PRESETS:
        raise ValueError(f"--bench-preset takes {', '.join(PRESETS)}; got {preset!r}")
    matrix = PRESETS[preset](gpu)
    if options.get("models"):
        matrix = replace(matrix, models=tuple(_split(options["models"], "--models")))
    matrix = replace(matrix, models=tuple(models.select(matrix.models)))
    matrix = _steps(matrix, options, xla_settings)
    if preset == "default" and not gpu:
        matrix = replace(matrix, runtimes=tuple(default_runtimes))
    matrix = _engines(replace(matrix, serving_xla=False not in xla_settings), options, installed_runtimes)
    matrix = _settings(matrix, options)
    if not matrix.cases():
        raise ValueError("the options select no case")
    return matrix
