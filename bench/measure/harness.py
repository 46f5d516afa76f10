"""One case, measured right: build (cached), compile timed apart, pilot, timed rounds, record."""
from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field, replace

import numpy as np
import pytest

from models.info import depth
from models.registry import COST_PARTNER

from ..core.records import CASE_FIELDS, case_params
from ..core.stats import latency_summary_ms, median_error, paired_ratio
from ..cost import facts
from ..engines import current as engine
from ..engines import runtimes
from ..engines.distribute import Scale
from ..engines.runtimes import KERAS, exports
from . import device, plan, scenarios
from .matrix import STEPS, Case, Matrix
from .model_cache import ModelCache
from .timing import RUNTIME_SETTLE_S, SETTLE_S, Budget, PhaseClock, Rounds, pilot, plan_rounds, stop_targets, timed_call


def step_key(case: Case) -> tuple:
    """The cases of one built model that share a step: bench.measure.model_cache keeps it for every batch size."""
    return case.model, case.runtime, case.precision, case.mode, case.xla


def reference_twins(case: Case) -> list[Case]:
    """The cases the report compares `case` with (bench.report.select): the same with XLA off, and in float32; a
    deployment runtime's case, the Keras float32 case without XLA, and its own float32 case for int8; the second
    module of a cost example (models.registry.COST_EXAMPLES), the same case of the first."""
    if case.runtime != KERAS:
        return [replace(case, runtime=KERAS, precision="float32")] + (
            [replace(case, precision="float32")] if case.precision != "float32" else [])
    return ([replace(case, xla=False)] if case.xla else []) + (
        [replace(case, precision="float32")] if case.precision != "float32" else []) + (
        [replace(case, model=COST_PARTNER[case.model])] if case.model in COST_PARTNER else [])


RUNTIME_ON_JAX = "the deployment runtimes take Keras's exports through TensorFlow: run them with --backend tensorflow"


def unsupported(case: Case, input_size: str = "default") -> str | None:
    """Why this engine, or the case's runtime, cannot run a case, or None."""
    if case.runtime != KERAS:
        if engine().NAME != "tensorflow":
            return RUNTIME_ON_JAX
        refused = runtimes.module(case.runtime).refuses(facts.lookup([case.model], input_size)[case.model].params)
        return f"{runtimes.module(case.runtime).LABEL}: {refused}" if refused else None
    return engine().unsupported(case)


CEILING_OF_EXECUTED = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


def ceiling_precision(case: Case, executed: str | None) -> str | None:
    """The precision whose measured ceiling bounds a case: a runtime's is the one it really runs in (OpenVINO picks
    bf16 by itself on a CPU that has it); None for int8, whose ceiling no probe measures."""
    if case.runtime == KERAS:
        return case.precision
    return CEILING_OF_EXECUTED.get(executed or "")


def flops_per_step(case: Case, cost, global_batch: int | None = None) -> float:
    per_sample = cost.flops if case.mode == "infer" else cost.training_flops
    return per_sample * (global_batch or case.batch_size)


def _oom_key(case: Case):
    return case.model, case.mode, case.precision, case.xla


@dataclass
class Measured:
    """A case this session measured: what a worker process needs to time it again (bench.plugin.workers)."""
    case: Case
    twin_ids: tuple[str, ...]  # test ids of the twins timed beside it
    median_s: float | None  # of its step (None: a serving scenario)
    seconds: float = 0.0  # the case's whole time in the session: build, first call, rounds, trace


@dataclass(frozen=True)
class Setup:
    """What a case's timing needs, made before anything is timed."""
    model: object
    cost: object
    strategy: object
    deployed: object  # a deployment runtime's export (bench.engines.runtimes.exports.Export), or None
    step: object
    new_step: bool  # traced for this case (else made for an earlier batch size)
    x: object
    y: object
    host_x: object  # a runtime's input: numpy

    def batch_of(self, which: Case) -> tuple:
        return (self.host_x, self.y) if which.runtime != KERAS else (self.x, self.y)


SERVING_ROOT = "results/traces/serving"  # a session's LoadGen logs, when it names no run folder


@dataclass
class Harness:
    matrix: Matrix
    budget: Budget
    tracer: object | None = None  # bench.measure.trace.Tracer, when traces are on
    peaks: device.Peaks = field(default_factory=device.Peaks)
    cache: ModelCache = field(default_factory=ModelCache)
    out_of_memory: dict = field(default_factory=dict)  # (model, mode, precision, xla) -> smallest failing batch
    skipped: list = field(default_factory=list)  # {"case", its fields, "reason"} for the saved JSON
    clock: PhaseClock = field(default_factory=PhaseClock)
    planner: plan.Planner | None = None  # None: no time budget
    speedups: dict = field(default_factory=dict)  # precision -> its ceiling over float32's
    last_result: dict | None = None  # the case just measured, for the console
    journal: object | None = None  # bench.core.journal.Journal: each finished case on disk at once
    elapsed_before: float = 0.0  # session seconds a resumed run had spent before this session
    started: float = field(default_factory=time.perf_counter)  # the session's start
    scale: Scale = field(default_factory=Scale)  # the strategies of replicas and workers
    lost: str | None = None  # why the cluster broke: the session stops after the case that found it
    measured: dict = field(default_factory=dict)  # test id -> Measured, of this session's cases, in their order
    deadline: float | None = None  # a worker process's end (perf_counter): later cases are skipped, not planned
    export_root: str = field(default_factory=exports.default_root)  # the deployment runtimes' export cache
    failed_exports: dict = field(default_factory=dict)  # (runtime, model, precision) -> why: its other cases skip
    serving_root: str = SERVING_ROOT  # the run's folder: LoadGen's logs go in <case>/loadgen/
    served: dict = field(default_factory=dict)  # (model, runtime, scenario) -> its figures, for the later scenarios

    def skip(self, case: Case, reason: str, *, failed: bool = False):
        """Record why a case was not measured (in the journal at once) and end it: a skip, or a failure."""
        record = {"case": case.id, **{name: getattr(case, name) for name in CASE_FIELDS}, "reason": reason}
        if failed:
            record["failed"] = True
        self.skipped.append(record)
        self.journal_write("skip", skip=record)
        if failed:
            pytest.fail(f"{case.id}: {reason}", pytrace=False)
        pytest.skip(reason)

    def machine_record(self) -> dict:
        """machine_info["cnnbench"]: the device, its ceilings and which precisions it runs fast."""
        record = {**device.machine_info(self.peaks), **device.precision_record(self.speedups)}
        cluster = self.scale.cluster
        if cluster is not None:
            record["cluster"] = {"workers": cluster.workers, "hosts": cluster.hosts,
                                 "addresses": list(cluster.addresses)}
        return record

    def journal_write(self, kind: str, **record) -> None:
        """A line in the run's journal, with the session time the run has spent (a resumed run's included)."""
        if self.journal is not None:
            elapsed = self.elapsed_before + time.perf_counter() - self.started
            self.journal.write(kind, elapsed_s=round(elapsed, 2), **record)

    def record(self, benchmark) -> None:
        """Journal a measured case as pytest-benchmark will save it (params made plain JSON)."""
        if benchmark.stats is None or "case" not in benchmark.extra_info:
            return
        saved = benchmark.stats.as_dict(include_data=True)
        saved["params"] = case_params(saved)
        self.journal_write("case", benchmark=saved)

    def check_runnable(self, case: Case) -> None:
        earlier = next((skip["reason"] for skip in self.skipped if skip["case"] == case.id), None)
        if earlier:  # by an earlier pass
            pytest.skip(earlier)
        failed_at = self.out_of_memory.get(_oom_key(case))
        if failed_at is not None and case.batch_size > failed_at:
            self.skip(case, f"out of memory at batch {failed_at}")
        reason = unsupported(case, self.matrix.input_size)
        if reason:
            self.skip(case, reason)

    def budget_for(self, case: Case) -> Budget:
        """A pass's share of the case's time; the latency scenario (`--latency-samples N`) times N single-sample
        steps in its first pass, within its own time limit."""
        if self.matrix.latency_samples and case.mode == "infer" and case.batch_size == 1 and case.pass_index == 1:
            return replace(self.budget, min_rounds=max(self.budget.min_rounds, self.matrix.latency_samples),
                           max_seconds=self.matrix.latency_seconds, within_time=True)
        return replace(self.budget, max_seconds=self.budget.max_seconds / self.matrix.passes)

    def make_step(self, case: Case, model, strategy=None, deployed=None):
        """(step, whether it is new): a built model's step for a mode and XLA setting serves every batch size; a
        deployment runtime's serves every batch size of its export (`deployed`)."""
        if deployed is not None:
            return self.cache.step(step_key(case), lambda: runtimes.RuntimeStep(
                runtimes.module(case.runtime), deployed.path, runtimes.threads()))
        if case.mode == "infer":
            return self.cache.step(step_key(case),
                                   lambda: engine().inference_step(model, xla=case.xla, strategy=strategy))
        return self.cache.step(step_key(case), lambda: engine().training_step(
            model, xla=case.xla, precision=case.precision, strategy=strategy))

    def timed_twins(self, case: Case) -> dict:
        """case id -> (step, twin case) of each reference twin the report compares `case` with (reference_twins)
        that this session timed earlier in the same pass and whose step is still built: its rounds are timed beside
        the case's (bench.measure.timing.Rounds). Not in a cluster, whose workers run fixed rounds."""
        if self.scale.cluster is not None or case.replicas > 1:
            return {}
        found = {}
        for twin in reference_twins(case):
            step = self.cache.built_step(step_key(twin)) if twin.test_id in self.measured else None
            if step is not None:
                found[twin.id] = (step, twin)
        return found

    def export(self, case: Case):
        """The case's export for its runtime (bench.engines.runtimes.exports), taken from the cache or made in a
        process of its own; a converter's failure, crash, hang or lack of memory skips the case with its reason."""
        key = case.runtime, case.model, case.precision
        if key in self.failed_exports:
            self.skip(case, self.failed_exports[key])
        try:
            with self.clock("export"):
                return exports.make_in_child(self.export_root, runtimes.module(case.runtime), case.model,
                                             self.matrix.input_size, case.precision)
        except exports.ExportFailed as err:
            self.failed_exports[key] = str(err)
            self.skip(case, self.failed_exports[key])

    def run(self, case: Case, benchmark) -> None:
        self.clock.case, self.last_result = {}, None
        started, measured = time.perf_counter(), None
        try:
            self.check_runnable(case)
            admitted = (self.planner is None or self.planner.admit(case, started)) and (
                self.deadline is None or started < self.deadline)
            if not self.scale.agree(admitted):  # in a cluster, the chief's plan
                self.skip(case, plan.OUTSIDE)
            benchmark.group = case.model
            estimate = self.planner.estimate_of(case) if self.planner is not None else None
            try:
                self._measure(case, benchmark)
            except Exception as err:  # noqa: BLE001  (each engine has its own out-of-memory error)
                if not engine().out_of_memory(err):
                    raise
                self.out_of_memory[_oom_key(case)] = case.batch_size
                self.cache.clear()
                self.skip(case, f"out of memory at batch {case.batch_size}")
            measured = time.perf_counter() - started
            if case.test_id in self.measured:
                self.measured[case.test_id].seconds = measured
            if estimate is not None and "case" in benchmark.extra_info:  # how the plan's estimate held
                benchmark.extra_info["estimate_s"] = {"planned": round(estimate, 3), "measured": round(measured, 3)}
        except self.scale.lost_errors() as err:
            self.lost = self.scale.lost_reason(err)
            self.skip(case, self.lost, failed=True)
        finally:
            if self.planner is not None:
                self.planner.finish(case, measured)

    def _measure(self, case: Case, benchmark) -> None:
        setup = self._set_up(case)
        if case.scenario != STEPS:
            scenarios.serve(self, case, benchmark, setup.model, setup.cost, setup.step, setup.deployed)
            self.measured[case.test_id] = Measured(case, (), None)
            return
        twins = self.timed_twins(case)
        timed = self._time(case, benchmark, setup, twins)
        if benchmark.stats is None:  # --benchmark-disable: the step ran once, nothing to record
            return
        median_s = self._record(case, benchmark, setup, timed)
        if self.tracer is not None and self.tracer.takes(case):
            with self.clock("trace"):
                steps = self.scale.agree(self.tracer.steps_for(median_s))
                benchmark.extra_info.update(self.tracer.capture_runtime(
                    case, runtimes.module(case.runtime), setup.deployed.path, setup.host_x, steps, runtimes.threads())
                    if setup.deployed else self.tracer.capture(case, setup.step, (setup.x, setup.y), steps))
        benchmark.extra_info["time_s"] = {phase: round(seconds, 3) for phase, seconds in self.clock.case.items()}
        self.measured[case.test_id] = Measured(case, tuple(twin.test_id for _, twin in twins.values()), median_s)

    def _set_up(self, case: Case) -> Setup:
        """The model built (a runtime's export is made from the float32 model), the export, the batch, the step."""
        strategy = self.scale.strategy(case)
        deploying = case.runtime != KERAS
        with self.clock("build"):
            model, cost = self.cache.get(case.model, "float32" if deploying else case.precision,
                                         self.matrix.input_size, strategy, keep=COST_PARTNER.get(case.model))
        deployed = self.export(case) if deploying else None
        x, y = engine().synthetic_batch(model, case.batch_size, strategy)
        engine().wait((x, y))
        step, new_step = self.make_step(case, model, strategy, deployed)
        host_x = np.asarray(x) if deploying else None  # a runtime's input: numpy, made before any timing
        return Setup(model, cost, strategy, deployed, step, new_step, x, y, host_x)

    def _time(self, case: Case, benchmark, setup: Setup, twins: dict) -> dict:
        """The first call, the pilot, then the timed rounds (beside the twins'): what the record takes of them."""
        args, clock = setup.batch_of(case), self.clock
        engine().reset_peak_memory()
        with clock("first_call"):
            compile_s = timed_call(setup.step, *args)  # tracing (+ XLA compile) or a runtime's session, and a run
        budget = self.budget_for(case)
        with clock("pilot"):
            pilot_samples = pilot(setup.step, args, budget)
        # the step's own peak, reached by its first call and pilot: its twins run beside it from here on
        peak_memory, note = engine().peak_memory()
        if setup.deployed:
            peak_memory, note = None, "a deployment runtime's allocator, which the engine does not see"
        batches = {name: self._twin_batch(case, twin, setup) for name, (_, twin) in twins.items()}
        with clock("pilot"):
            for name, (twin_step, _) in twins.items():  # built and traced at this batch size: a call to warm it
                timed_call(twin_step, *batches[name])
        paired = []
        if self.scale.cluster is not None:  # every worker runs the chief's count of rounds, to the step
            rounds, stop_reason = plan_rounds(pilot_samples, budget)
            with clock("timed"):
                benchmark.pedantic(timed_call, args=(setup.step, *args), rounds=self.scale.agree(rounds),
                                   iterations=1, warmup_rounds=0)
        else:
            timed = Rounds(setup.step, args, budget,
                           {name: (s, batches[name]) for name, (s, _) in twins.items()},
                           seed=zlib.crc32(case.test_id.encode()),
                           settle_s=RUNTIME_SETTLE_S if setup.deployed else SETTLE_S)
            with clock("timed"):
                stop_reason = timed.run(benchmark)
            paired = [{"against": name, **paired_ratio(ratios), "ratios": [float(f"{r:.5g}") for r in ratios]}
                      for name, ratios in timed.ratios().items() if ratios]
        return {"compile_s": compile_s, "stop_reason": stop_reason, "paired": paired,
                "peak_memory_bytes": peak_memory, "peak_memory_note": note}

    def _twin_batch(self, case: Case, twin: Case, setup: Setup) -> tuple:
        """The batch a twin's step takes: the case's own, but for another model's (a cost example's first module),
        whose targets have its own shape (inception3a_naive's 416 channels against inception3a's 256)."""
        if twin.model == case.model:
            return setup.batch_of(twin)
        model = self.cache.built_model(twin.model, twin.precision, self.matrix.input_size, setup.strategy)
        batch = engine().synthetic_batch(model, twin.batch_size, setup.strategy)
        engine().wait(batch)
        return batch

    def _record(self, case: Case, benchmark, setup: Setup, timed: dict) -> float:
        """The case's saved record (extra_info) from its rounds; its median step, in seconds."""
        with self.clock("probes"):
            machine_speed = self.peaks.speed_now()
        samples = list(benchmark.stats.stats.data)
        latency = latency_summary_ms(samples)
        median_s = latency["p50"] / 1e3
        error = median_error(samples)
        target, pair_target = stop_targets(self.budget, median_s)
        self.last_result = {"case": case.test_id, "median_s": median_s, "error": error, "rounds": len(samples)}
        scale = self.scale.record(case, setup.strategy)
        step_flops = flops_per_step(case, setup.cost, scale["global_batch"])
        achieved = step_flops / median_s
        deployment = self.deployment_record(case, setup.step, setup.deployed) if setup.deployed else {}
        bound_by = ceiling_precision(case, deployment.get("executed_precision"))
        devices = self.scale.devices(case, setup.strategy)
        ceiling = self.peaks.flops(bound_by) * devices if bound_by in (*self.speedups, case.precision) else None
        paired = timed.pop("paired")
        benchmark.extra_info.update({
            **scenarios.case_record(case, setup.cost, self.matrix.passes), **timed,
            "trainable_params": setup.cost.trainable_params, "depth": depth(setup.model),
            "macs_per_sample": setup.cost.macs, "activation_bytes_per_sample": setup.cost.activation_bytes,
            "flops_per_step": step_flops, "latency_ms": latency, "throughput": scale["global_batch"] / median_s,
            "first_call_traced": setup.new_step, "achieved_tflops": achieved / 1e12,
            "mfu": achieved / ceiling if ceiling else None, "mfu_ceiling": bound_by if ceiling else None,
            "ceiling_devices": devices, "rounds": len(samples),
            "cv": latency["stdev"] / latency["mean"] if latency["mean"] else 0.0,
            "median_error": error, "target_error": target, "pair_target": pair_target if paired else None,
            "reached_target": error is not None and error <= target, "machine_speed_flops": machine_speed,
            "round_ms": [float(f"{t * 1e3:.5g}") for t in samples],  # each pass's rounds, pooled by the report
            **scale, **deployment,
        })
        if paired:  # the case's throughput over each twin's, from rounds timed side by side
            benchmark.extra_info["paired"] = paired
        return median_s

    @staticmethod
    def deployment_record(case: Case, step, deployed) -> dict:
        """What a deployment runtime's case adds: the export, the precision the runtime really ran, its threads, and
        its output against the Keras float32 model's on the export's reference input."""
        runtime = runtimes.module(case.runtime)
        fidelity = exports.relative_error(step(deployed.reference_input), deployed.reference_output)
        return {"runtime_label": runtime.LABEL, "runtime_versions": runtime.versions(),
                "executed_precision": step.session.executed_precision, "threads": step.threads,
                "compiles": runtime.COMPILES,
                "export": {"format": runtime.FORMAT, "seconds": deployed.seconds, "size_bytes": deployed.size_bytes,
                           "cached": deployed.cached},
                "fidelity": {"max_relative_error": fidelity, "against": "Keras float32, the same weights and input",
                             "samples": int(deployed.reference_input.shape[0])}}
