"""Serving, the way MLPerf's LoadGen measures it (bench.measure.serving): per model and engine, SingleStream's p90
beside the steps' own p90 at batch 1, the highest Server rate within the p99 bound, and Offline's samples/s, each
with LoadGen's verdict; and the Server trials, latency against load."""
from __future__ import annotations

from collections import defaultdict

from models.registry import natural_key

from .select import KERAS, runtime_of

NOT_MINIMUM = "quick: not at MLPerf's minimum duration"


def engine_label(case) -> str:
    """TensorFlow (or JAX), or the deployment runtime, that served the case."""
    if runtime_of(case) != KERAS:
        return case.get("runtime_label") or runtime_of(case)
    return {"tensorflow": "TensorFlow", "jax": "JAX"}.get(case.get("backend"), case.get("backend") or "-") + (
        " (XLA)" if case.get("xla") else "")


def served(runs) -> dict:
    """(device, backend, model, engine) -> {scenario: its serving record, with the case}."""
    found = defaultdict(dict)
    for run in runs:
        for case in run.serving:
            key = case["device"], case.get("backend"), case["model"], engine_label(case)
            found[key][case["scenario"]] = {**(case.get("serving") or {}), "case": case}
    return dict(sorted(found.items(), key=lambda item: (natural_key(item[0][2]), item[0][3])))


def validity(record) -> str:
    """VALID, or INVALID with LoadGen's reason: never a bare number for a run it did not accept."""
    if record is None:
        return "-"
    if record.get("valid"):
        return "VALID"
    return f"INVALID ({record.get('reason') or 'LoadGen gave no reason'})"


def _figure(record, key: str, fmt: str) -> str:
    if record is None or record.get(key) is None:
        return "-"
    return format(record[key], fmt) if record.get("valid") else f"({format(record[key], fmt)})"


def steps_p90(runs, case) -> float | None:
    """The p90 of the steps' own case at batch 1 on the same engine (float32), back to back."""
    for run in runs:
        for other in run.cases:
            if (other["model"], other["device"], other.get("backend"), runtime_of(other), other["precision"],
                    other["batch_size"], other["mode"], bool(other.get("xla"))) == (
                    case["model"], case["device"], case.get("backend"), runtime_of(case), "float32", 1, "infer",
                    bool(case.get("xla"))):
                return other.get("latency_p90_ms")
    return None


def serving_table(view):
    rows = []
    for (_device, _backend, _model, engine), scenarios in served(view.runs).items():
        single, server, offline = (scenarios.get(s) for s in ("single-stream", "server", "offline"))
        any_case = next(iter(scenarios.values()))["case"]
        steps = (single or {}).get("back_to_back_p90_ms") or steps_p90(view.runs, any_case)
        rules = {r.get("rules") for r in scenarios.values()}
        rows.append((view.label(any_case), engine, _figure(single, "p90_ms", ".3g"),
                     "-" if steps is None else f"{steps:.3g}", validity(single),
                     "-" if server is None else _figure(server, "qps_at_bound", ".4g"),
                     "-" if server is None or server.get("p99_ms") is None else _figure(server, "p99_ms", ".3g"),
                     "-" if server is None else f"{server.get('bound_ms', 0):.3g}", validity(server),
                     _figure(offline, "samples_per_s", ".4g"), validity(offline),
                     NOT_MINIMUM if "quick" in rules else "MLPerf's minimums"))
    return ("Serving (MLPerf LoadGen): SingleStream's p90 latency (ms) beside the same inference's p90 called back "
            "to back at batch 1, just before it (numpy in and out, as LoadGen's queries; else the steps case's): "
            "SingleStream adds each query's way from LoadGen through the queue to the worker thread and back; "
            "Server: the highest rate (queries/s, Poisson arrivals, batched up to the largest batch) whose p99 stays "
            "within the bound, with that p99 (ms); Offline: samples/s. A figure in parentheses is of a run LoadGen "
            "judged INVALID; its reason follows",
            ("model", "engine", "SingleStream p90 (ms)", "back to back p90 (ms)", "SingleStream", "Server QPS at bound",
             "its p99 (ms)", "bound (ms)", "Server", "Offline (samples/s)", "Offline", "rules"), rows)


def trials_table(view):
    rows = []
    for (_device, _backend, _model, engine), scenarios in served(view.runs).items():
        server = scenarios.get("server")
        for trial in (server or {}).get("trials") or []:
            rows.append((view.label(server["case"]), engine, f"{trial['target_qps']:.4g}",
                         "-" if trial.get("p99_ms") is None else f"{trial['p99_ms']:.3g}", trial.get("queries"),
                         " ".join(f"{size}:{n}" for size, n in sorted(trial.get("batches", {}).items(),
                                                                        key=lambda item: int(item[0]))),
                         validity(trial)))
    return ("Server trials: each a LoadGen run at one offered rate (queries/s), its p99 latency (ms), the queries it "
            "ran and the batches the queue formed (size:count); the search's short trials are judged by their p99 "
            "against the bound, the rate reported is the best VALID one",
            ("model", "engine", "offered QPS", "p99 (ms)", "queries", "batches formed", "LoadGen"), rows)


def serving_lines(runs) -> list[str]:
    """The finding: per model and engine, the highest rate served within its bound, or that none was."""
    parts = []
    for (_device, _backend, model, engine), scenarios in served(runs).items():
        server = scenarios.get("server")
        if server is None:
            continue
        if server.get("valid"):
            parts.append(f"{model} on {engine} {server['qps_at_bound']:.4g} queries/s within "
                         f"{server['bound_ms']:.3g} ms (p99 {server['p99_ms']:.3g} ms)")
        else:
            parts.append(f"{model} on {engine}: not servable within {server.get('bound_ms', 0):.3g} ms at any rate "
                         "tried")
    if not parts:
        return []
    quick = any(s.get("rules") == "quick" for scenarios in served(runs).values() for s in scenarios.values())
    return [f"**Serving** (LoadGen's Server scenario, the highest rate whose p99 stays within the bound): "
            f"{'; '.join(parts)}." + (f" Runs are {NOT_MINIMUM}." if quick else "")]


def load_curves(runs) -> list[tuple[str, list[tuple[float, float, bool]]]]:
    """(label, [(offered QPS, p99 ms, VALID)]) of every Server case, for the plot of latency against load."""
    curves = []
    for (_device, _backend, model, engine), scenarios in served(runs).items():
        trials = (scenarios.get("server") or {}).get("trials") or []
        points = sorted((t["target_qps"], t["p99_ms"], bool(t.get("valid"))) for t in trials if t.get("p99_ms"))
        if points:
            curves.append((f"{model}, {engine}", points))
    return curves


def tables(view) -> list[tuple]:
    return [serving_table(view), trials_table(view)]
