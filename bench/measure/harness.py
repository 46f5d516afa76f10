"""One case, measured right: build (cached), compile timed apart, pilot, timed rounds, record."""
from __future__ import annotations

import contextlib
import math
import os
import shutil
import time
import zlib
from dataclasses import dataclass, field, replace

import numpy as np
import pytest

import models
from models.info import depth
from models.registry import COST_PARTNER

from ..core.records import CASE_FIELDS, SCHEMA_VERSION, case_params
from ..core.stats import latency_summary_ms, median_error, paired_ratio
from ..cost import facts
from ..engines import current as engine
from ..engines import runtimes
from ..engines.distribute import Scale
from ..engines.runtimes import KERAS, exports
from . import device, plan, serving
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
    twins: tuple[str, ...]  # test ids of the twins timed beside it
    median_s: float | None  # of its step (None: a serving scenario)
    seconds: float = 0.0  # the case's whole time in the session: build, first call, rounds, trace


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
    export_root: str = field(default_factory=exports.default_root)  # the deployment runtimes' export cache
    failed_exports: dict = field(default_factory=dict)  # (runtime, model, precision) -> why: its other cases skip
    serving_root: str = "results/traces/serving"  # the run's folder: LoadGen's logs go in <case>/loadgen/
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

    def twins(self, case: Case) -> dict:
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
            admitted = self.planner is None or self.planner.admit(case, started)
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
        clock = self.clock
        strategy = self.scale.strategy(case)
        deploying = case.runtime != KERAS
        with clock("build"):  # a runtime's export is made from the float32 model
            model, cost = self.cache.get(case.model, "float32" if deploying else case.precision,
                                         self.matrix.input_size, strategy, keep=COST_PARTNER.get(case.model))
        deployed = self.export(case) if deploying else None
        x, y = engine().synthetic_batch(model, case.batch_size, strategy)
        engine().wait((x, y))
        host_x = np.asarray(x) if deploying else None  # a runtime's input: numpy, made before any timing

        def batch_of(which: Case):
            return (host_x, y) if which.runtime != KERAS else (x, y)

        step, new_step = self.make_step(case, model, strategy, deployed)
        if case.scenario != STEPS:
            return self._serve(case, benchmark, model, cost, step, deployed)
        args = batch_of(case)
        engine().reset_peak_memory()
        with clock("first_call"):
            compile_s = timed_call(step, *args)  # tracing (+ XLA compile) or a runtime's session, and the first run
        budget = self.budget_for(case)
        twins = self.twins(case)
        with clock("pilot"):
            pilot_samples = pilot(step, args, budget)
        # the step's own peak, reached by its first call and pilot: its twins run beside it from here on
        peak_memory, peak_memory_note = engine().peak_memory()
        if deploying:
            peak_memory, peak_memory_note = None, "a deployment runtime's allocator, which the engine does not see"
        with clock("pilot"):
            for twin_step, twin in twins.values():  # built and traced at this batch size: a call to warm it
                timed_call(twin_step, *batch_of(twin))
        paired = []
        if self.scale.cluster is not None:  # every worker runs the chief's count of rounds, to the step
            rounds, stop_reason = plan_rounds(pilot_samples, budget)
            with clock("timed"):
                benchmark.pedantic(timed_call, args=(step, *args), rounds=self.scale.agree(rounds), iterations=1,
                                   warmup_rounds=0)
        else:
            timed = Rounds(step, args, budget, {name: (s, batch_of(twin)) for name, (s, twin) in twins.items()},
                           seed=zlib.crc32(case.test_id.encode()),
                           settle_s=RUNTIME_SETTLE_S if deploying else SETTLE_S)
            with clock("timed"):
                stop_reason = timed.run(benchmark)
            paired = [{"against": name, **paired_ratio(ratios), "ratios": [float(f"{r:.5g}") for r in ratios]}
                      for name, ratios in timed.ratios().items() if ratios]
        if benchmark.stats is None:  # --benchmark-disable: the step ran once, nothing to record
            return
        with clock("probes"):
            machine_speed = self.peaks.speed_now()
        samples = list(benchmark.stats.stats.data)
        latency = latency_summary_ms(samples)
        median_s = latency["p50"] / 1e3
        error = median_error(samples)
        target, pair_target = stop_targets(self.budget, median_s)
        self.last_result = {"case": case.test_id, "median_s": median_s, "error": error, "rounds": len(samples)}
        scale = self.scale.record(case, strategy)
        step_flops = flops_per_step(case, cost, scale["global_batch"])
        achieved = step_flops / median_s
        deployment = self.deployment_record(case, step, deployed) if deploying else {}
        bound_by = ceiling_precision(case, deployment.get("executed_precision"))
        ceiling = (self.peaks.flops(bound_by) * self.scale.devices(case, strategy)
                   if bound_by in (*self.speedups, case.precision) and bound_by else None)
        benchmark.extra_info.update({
            "schema_version": SCHEMA_VERSION, "case": case.id, "model": case.model,
            "family": models.entry(case.model).family, "mode": case.mode, "batch_size": case.batch_size,
            "precision": case.precision,
            "xla": case.xla, "device": device.device_name(), "input_shape": list(cost.input_shape),
            "params": cost.params, "trainable_params": cost.trainable_params, "depth": depth(model),
            "macs_per_sample": cost.macs,
            "flops_per_sample": cost.flops, "activation_bytes_per_sample": cost.activation_bytes,
            "flops_per_step": step_flops, "latency_ms": latency,
            "throughput": scale["global_batch"] / median_s, "compile_s": compile_s, "first_call_traced": new_step,
            "achieved_tflops": achieved / 1e12, "mfu": achieved / ceiling if ceiling else None,
            "mfu_ceiling": bound_by if ceiling else None, "runtime": case.runtime, "scenario": case.scenario,
            "ceiling_devices": self.scale.devices(case, strategy),
            "peak_memory_bytes": peak_memory, "peak_memory_note": peak_memory_note, "backend": engine().NAME,
            "rounds": len(samples), "stop_reason": stop_reason,
            "cv": latency["stdev"] / latency["mean"] if latency["mean"] else 0.0,
            "median_error": error, "target_error": target, "pair_target": pair_target if paired else None,
            "reached_target": error is not None and error <= target,
            "machine_speed_flops": machine_speed, "pass": case.pass_index, "passes": self.matrix.passes,
            "round_ms": [float(f"{t * 1e3:.5g}") for t in samples],  # each pass's rounds, pooled by the report
            **scale, **deployment,
        })
        if paired:  # the case's throughput over each twin's, from rounds timed side by side
            benchmark.extra_info["paired"] = paired
        if self.tracer is not None and self.tracer.takes(case):
            with clock("trace"):
                steps = self.scale.agree(self.tracer.steps_for(median_s))
                if deploying:
                    benchmark.extra_info.update(self.tracer.capture_runtime(
                        case, runtimes.module(case.runtime), deployed.path, host_x, steps, runtimes.threads()))
                else:
                    benchmark.extra_info.update(self.tracer.capture(case, step, (x, y), steps))
        benchmark.extra_info["time_s"] = {phase: round(seconds, 3) for phase, seconds in clock.case.items()}
        self.measured[case.test_id] = Measured(case, tuple(twin.test_id for _, twin in twins.values()), median_s)

    def _serve(self, case: Case, benchmark, model, cost, step, deployed) -> None:
        """A LoadGen scenario (bench.measure.serving) against the case's float32 inference step, its logs written in
        a staging folder and moved beside the case's traces when whole."""
        deploying = deployed is not None
        labels = {}  # each padded batch size's targets, made before any query is timed
        for size in serving.buckets(case.batch_size):
            labels[size] = engine().synthetic_batch(model, size)[1]

        def infer(x):  # a query's result on the host: where a server would answer it
            return np.asarray(step(x) if deploying else step(x, labels[len(x)]))
        final = os.path.join(self.serving_root, case.id, "loadgen")
        staged = os.path.join(self.serving_root + ".staging", case.id)
        shutil.rmtree(staged, ignore_errors=True)
        with self.clock("first_call"):
            started = time.perf_counter()
            loadgen = serving.LoadGen(infer, tuple(model.input_shape[1:]), case.batch_size, self.matrix.loadgen_rules,
                                      staged, case.model)
            compile_s = time.perf_counter() - started
        record = {}

        def scenario():
            record.update(self._scenario(case, loadgen, infer))
        try:
            with self.clock("timed"):
                benchmark.pedantic(scenario, rounds=1, iterations=1, warmup_rounds=0)
            os.makedirs(os.path.dirname(final), exist_ok=True)
            shutil.rmtree(final, ignore_errors=True)
            os.replace(staged, final)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
            with contextlib.suppress(OSError):  # the staging folder, once no case is left in it
                os.rmdir(os.path.dirname(staged))
        for trial in record.get("trials", []) + [record]:
            if trial.get("log_dir"):
                trial["log_dir"] = trial["log_dir"].replace(staged, final, 1)
        self.served[case.model, case.runtime, case.scenario] = record
        self.last_result = {"case": case.test_id, "summary": serving.summary(record)}
        benchmark.extra_info.update({
            "schema_version": SCHEMA_VERSION, "case": case.id, "model": case.model,
            "family": models.entry(case.model).family, "mode": case.mode, "batch_size": case.batch_size,
            "precision": case.precision, "xla": case.xla, "device": device.device_name(),
            "input_shape": list(cost.input_shape), "params": cost.params, "flops_per_sample": cost.flops,
            "backend": engine().NAME, "runtime": case.runtime, "scenario": case.scenario, "compile_s": compile_s,
            "pass": case.pass_index, "passes": self.matrix.passes, "serving": record, "trace_dir": final,
            **({"runtime_label": runtimes.module(case.runtime).LABEL} if deploying else {}),
        })
        benchmark.extra_info["time_s"] = {phase: round(seconds, 3) for phase, seconds in self.clock.case.items()}
        self.measured[case.test_id] = Measured(case, (), None)

    def _scenario(self, case: Case, loadgen, infer) -> dict:
        """The scenario's figures: LoadGen's, its validity and its reasons; Server's every trial of the rate."""
        rules = {"rules": self.matrix.loadgen_rules, "max_batch": case.batch_size,
                 "batch_timeout_ms": serving.BATCH_TIMEOUT_S * 1e3}
        if case.scenario == "single-stream":
            steps = serving.back_to_back(infer, loadgen.samples)
            return {**rules, **loadgen.single_stream(steps["back_to_back_p50_ms"] / 1e3).record(), **steps}
        if case.scenario == "offline":
            return {**rules, **loadgen.offline(case.batch_size / serving.probe(infer, loadgen.samples,
                                                                               case.batch_size)).record()}
        single = self.served.get((case.model, case.runtime, "single-stream"))
        if self.matrix.latency_bound_ms:
            bound_s, bound_from = self.matrix.latency_bound_ms / 1e3, "--latency-bound-ms"
        else:
            if not single or not single.get("p90_ms"):  # this engine's SingleStream, measured now
                single = loadgen.single_stream(serving.probe(infer, loadgen.samples, 1)).record()
            bound_s = max(serving.BOUND_MULTIPLE * single["p90_ms"] / 1e3, serving.BOUND_FLOOR_S)
            bound_from = (f"{serving.BOUND_MULTIPLE:g}x the SingleStream p90 ({single['p90_ms']:.3g} ms), at least "
                          f"{serving.BOUND_FLOOR_S * 1e3:g} ms")
        offline = self.served.get((case.model, case.runtime, "offline"))
        ceiling = (offline or {}).get("samples_per_s") or case.batch_size / serving.probe(
            infer, loadgen.samples, case.batch_size)
        best, trials = loadgen.find_rate(bound_s, ceiling)
        found = best.record() if best else {"valid": False, "reason": f"not servable within {bound_s * 1e3:.3g} ms "
                                                                      "at any rate tried", "scenario": "server"}
        return {**rules, **found, "bound_ms": bound_s * 1e3, "bound_from": bound_from,
                "qps_at_bound": best.target_qps if best else None,
                "trials": [trial.record() for trial in trials]}

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


def open_session(matrix: Matrix, *, tracer=None, started: float | None = None, scale: Scale | None = None,
                 export_root: str | None = None, peaks: device.Peaks | None = None) -> Harness:
    """The session's harness: ceilings measured in every candidate precision, the precisions the device runs fast
    kept (all of them when named; in a cluster, those the chief keeps), and the cases planned to the time budget,
    counted from `started`."""
    scale = scale or Scale()
    budget = Budget(min_rounds=matrix.min_rounds, max_seconds=matrix.case_seconds, fixed_pilot=bool(scale.cluster))
    harness = Harness(matrix, budget, tracer=tracer, scale=scale, export_root=export_root or exports.default_root(),
                      peaks=peaks or device.Peaks())
    probing = time.perf_counter()
    harness.started = started if started is not None else probing
    with harness.clock("probes"):
        harness.speedups = device.speedups(harness.peaks, matrix.precisions or ("float32",))
    if not matrix.explicit_precisions:
        fast = device.fast_precisions(harness.speedups)
        kept = scale.agree(sum(1 << i for i, p in enumerate(matrix.precisions) if p in fast))
        harness.matrix = replace(matrix, precisions=tuple(p for i, p in enumerate(matrix.precisions) if kept >> i & 1))
    if harness.matrix.time_budget:
        # the end of the session measures the kept precisions' ceilings again; then come the save and the report
        # the README runs after it (about 10 s with its plots): a Zen 4 default run and report took 19 min 59 s
        # a worker process (its ceilings given) neither probes again nor saves a report: nothing to keep
        reserve = 0.0 if peaks is not None else (
            (time.perf_counter() - probing) * len(harness.matrix.precisions) / len(matrix.precisions) + 20.0
            + plan.spread_seconds(matrix))
        deadline = harness.started + harness.matrix.time_budget * 60 / matrix.processes  # the workers get the rest
        ceilings = {p: harness.peaks.flops(p) for p in {"float32", *harness.matrix.precisions}}
        harness.planner = make_planner(harness.matrix, ceilings, plan.GPU_TIMINGS if device.gpu() else plan.CPU_TIMINGS,
                                       tracer, deadline, reserve, harness.export_root)
        harness.planner.setup = time.perf_counter() - harness.started
    return harness


def export_estimate(visit: Case, known, timings: plan.Timings, export_root: str | None, input_size: str) -> float:
    """Seconds a deployment runtime's case will spend exporting: none when the export is cached, or in a later
    pass (the first made it)."""
    if visit.runtime == KERAS or visit.pass_index > 1:
        return 0.0
    runtime = runtimes.module(visit.runtime)
    if export_root and exports.find(export_root, runtime, visit.model, input_size, visit.precision):
        return 0.0
    return timings.export(visit, known) + plan.EXPORT_PROCESS_S


def make_planner(matrix: Matrix, ceilings: dict, timings: plan.Timings, tracer, deadline: float | None,
                 reserve: float = 0.0, export_root: str | None = None) -> plan.Planner:
    """A planner for the matrix's visits on a device of these ceilings (FLOP/s by precision) and timings."""
    known = facts.lookup(matrix.models, matrix.input_size)
    visits = [visit for visit in matrix.visits() if not unsupported(visit, matrix.input_size)]  # others skip
    planned = {visit.test_id for visit in visits}
    estimates = {}
    for visit in visits:
        seconds = matrix.case_seconds
        ceiling = ceilings[visit.precision if visit.runtime == KERAS else "float32"]
        if matrix.latency_samples and visit.mode == "infer" and visit.batch_size == 1 and visit.pass_index == 1:
            step = timings.step(visit, known[visit.model], ceiling)
            seconds = min(matrix.latency_seconds, matrix.latency_samples * step) * matrix.passes
        traced = tracer is not None and visit.pass_index == 1
        if visit.scenario != STEPS:
            estimates[visit.test_id] = plan.estimate_serving(
                visit, known[visit.model], ceiling, timings, rules=matrix.loadgen_rules,
                export_s=export_estimate(visit, known[visit.model], timings, export_root, matrix.input_size))
            continue
        estimates[visit.test_id] = plan.estimate_case(
            visit, known[visit.model], ceiling, timings, min_rounds=matrix.min_rounds,
            case_seconds=seconds, passes=matrix.passes, trace_steps=tracer.steps_for if traced else None,
            trace_every_case=traced and tracer.every_case,
            twins=sum(twin.test_id in planned for twin in reference_twins(visit)),
            export_s=export_estimate(visit, known[visit.model], timings, export_root, matrix.input_size))
    builds = {name: timings.build(known[name]) for name in matrix.models}
    return plan.Planner(visits, estimates, builds, deadline, reserve, rebuild_share=timings.rebuild_share)


def plan_record(harness: Harness) -> dict | None:
    """The plan as it ended, for the saved JSON: the budget, what it admitted and how far the estimates were off."""
    planner = harness.planner
    if planner is None:
        return None
    outside = {skip["case"] for skip in harness.skipped if skip["reason"] == plan.OUTSIDE}
    admitted = [visit for visit in planner.visits if visit.id not in outside]
    fixed, priority = planner.setup + planner.reserve, []
    for (label, measured, cases), seconds in zip(planner.by_tier(admitted), planner.tier_seconds()):
        fixed += seconds
        if cases:
            priority.append({"tier": label, "cases": cases, "outside": cases - measured,
                             "admits_all_minutes": math.ceil(fixed / 60)})
    return {"budget_minutes": harness.matrix.time_budget, "candidate_cases": len(planner.visits),
            "outside_budget": len(outside), "measured_over_estimated": planner.measured_over_estimated,
            "estimated_s": sum(e for e, _ in planner.spent), "measured_s": sum(m for _, m in planner.spent),
            "priority": priority, "missing_exports": missing_exports(planner, outside)}


def missing_exports(planner: plan.Planner, outside: set) -> dict:
    """The runtime cases outside the budget whose export was not cached when planned: how many, their precisions,
    and their exports' estimated minutes (each export once), which `python -m bench.export` makes ahead."""
    cases = [visit for visit in planner.visits if visit.id in outside and visit.runtime != KERAS
             and planner.estimates[visit.test_id].export > 0]
    seconds = {(v.runtime, v.model, v.precision): planner.estimates[v.test_id].export - plan.EXPORT_PROCESS_S
               for v in cases}
    return {"cases": len(cases), "precisions": sorted({v.precision for v in cases}),
            "minutes": round(sum(seconds.values()) / 60, 1)}
