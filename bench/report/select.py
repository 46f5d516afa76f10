"""Choosing what the report shows, with no formatting (bench.report.tables formats): a case's twin with one setting
changed and the verdict on their ratio, the settings present, each setting's largest batch, the traced cases."""
from __future__ import annotations

import statistics
from collections import Counter

from models.registry import COST_EXAMPLES, natural_key

from ..core.records import KERAS
from .noise import Pair, judged

# What makes a case the case it is; a twin differs from it in the fields a comparison changes, and no other.
SETTING_FIELDS = ("device", "backend", "runtime", "model", "input_shape", "mode", "precision", "xla", "batch_size",
                  "replicas", "workers")
REFERENCE = {"mode": "infer", "runtime": KERAS, "precision": "float32", "xla": False}  # the zoo is compared in it
BASE_BACKEND = "tensorflow"


def runtime_of(case) -> str:
    """A case's runtime: Keras where a record (saved before the deployment runtimes, or made by hand) has none."""
    return case.get("runtime", KERAS)


def in_reference(case) -> bool:
    """Whether a case is in the setting the zoo is compared in (REFERENCE)."""
    return all((runtime_of(case) if k == "runtime" else case[k]) == v for k, v in REFERENCE.items())


def _key(case, replaced: dict) -> tuple:
    values = (replaced.get(field, case.get(field)) for field in SETTING_FIELDS)
    return tuple(tuple(v) if isinstance(v, list) else v for v in values)


def twins(cases, new: dict, base: dict) -> list[tuple[dict, dict]]:
    """(twin, case) for every case whose fields are `new`, with the case equal to it but for `base`'s fields: the
    report's one way of matching a case with its reference twin."""
    index = {_key(case, {}): case for case in cases}
    found = []
    for case in cases:
        if all(case.get(field) == value for field, value in new.items()):
            twin = index.get(_key(case, base))
            if twin is not None and twin is not case:
                found.append((twin, case))
    return found


def pairs(runs, vary: str, base_value, new_value) -> list[Pair]:
    """Every case whose `vary` setting is `new_value`, against its twin at `base_value` in the same run (so both
    carry that run's noise between runs), with the verdict on their ratio."""
    found = []
    for run in runs:
        measured = [case for case in run.cases if case.get("throughput")]
        found.extend(judged(base, new, run.noise, run.noise)
                     for base, new in twins(measured, {vary: new_value}, {vary: base_value}))
    return found


def backend_pairs(runs, backend: str) -> list[tuple[str, Pair]]:
    """(TensorFlow's XLA setting, pair) for every case of a `backend` run against the same case of a TensorFlow run:
    with XLA as the other backend ran it, and with XLA off, as TensorFlow runs by default. Each run brings its own
    noise between runs; no machine correction, as the speed probes are themselves the engines' and differ."""
    noise = {run.name: run.noise for run in runs}
    measured = [case for run in runs for case in run.cases if case.get("throughput")]
    found = []
    for xla in ("as ran", False):
        base = {"backend": BASE_BACKEND} if xla == "as ran" else {"backend": BASE_BACKEND, "xla": False}
        for twin, case in twins(measured, {"backend": backend}, base):
            if xla is False and case["xla"] is False:
                continue  # the same twin as with XLA as it ran
            found.append(("on" if twin["xla"] else "off", judged(twin, case, noise[twin["run"]], noise[case["run"]])))
    return found


def other_backends(runs) -> list[str]:
    return sorted({c.get("backend") for r in runs for c in r.cases} - {BASE_BACKEND, None})


def cost_example_pairs(cases) -> list[tuple[dict, dict]]:
    """(module without 1x1 reductions, module with them) of the source documents' cost example, every other setting
    held."""
    return [pair for big, small in COST_EXAMPLES for pair in twins(cases, {"model": small}, {"model": big})]


def settings(cases) -> list[tuple[str, str, str, bool]]:
    """(mode, runtime, precision, xla) groups present, inference, Keras and float32 first."""
    return sorted({(c["mode"], runtime_of(c), c["precision"], c["xla"]) for c in cases},
                  key=lambda s: (s[0] != "infer", s[1] != KERAS, s[1], s[2] != "float32", s[2], s[3]))


def one_per_model(cases) -> list[dict]:
    """The first case of each model, in natural order of the names: its counts stand for the model's."""
    first = {}
    for case in cases:
        first.setdefault(case["model"], case)
    return [first[name] for name in sorted(first, key=natural_key)]


def largest_batches(view) -> list[tuple[dict, int, list]]:
    """(case, its setting's largest batch on the device, [(batch, reason)] of its model's larger batches that were
    skipped) for each model's largest batch in each setting."""
    largest, setting_largest = {}, Counter()
    for c in view.cases:
        key = (view.label(c), c["mode"], runtime_of(c), c["precision"], c["xla"])
        if key not in largest or c["batch_size"] > largest[key]["batch_size"]:
            largest[key] = c
        setting = (c["device"], c["mode"], runtime_of(c), c["precision"], c["xla"])
        setting_largest[setting] = max(setting_largest[setting], c["batch_size"])
    found = []
    for _, case in sorted(largest.items(), key=lambda kv: natural_key(kv[0])):
        top = setting_largest[(case["device"], case["mode"], runtime_of(case), case["precision"], case["xla"])]
        skipped = sorted({(skip["batch_size"], skip["reason"]) for run in view.runs for skip in run.skipped
                          if skip.get("model") == case["model"] and skip.get("batch_size", 0) > case["batch_size"]
                          and all(skip.get(k, KERAS if k == "runtime" else None) == case[k]
                                  for k in ("mode", "runtime", "precision", "xla"))})
        found.append((case, top, skipped))
    return found


def traced(view) -> list[tuple[str, dict]]:
    """(label, case) of each model's largest traced case (training before inference), and of each deployment
    runtime's largest profiled case of it, in natural order."""
    chosen = {}
    for c in view.cases:
        label = view.label(c) + (f" ({c['runtime_label']})" if runtime_of(c) != KERAS else "")
        if c["top_ops"] and (label not in chosen or
                             (c["mode"], c["batch_size"]) > (chosen[label]["mode"], chosen[label]["batch_size"])):
            chosen[label] = c
    return sorted(chosen.items(), key=lambda kv: natural_key(kv[0]))


def median_precision(run) -> dict:
    """How precise a run's medians are: the cases' 95% half-widths at the median, 90th percentile and widest."""
    errors = sorted(c["median_error"] for c in run.cases if c["median_error"] is not None)
    return {"cases": len(run.cases), "unknown": len(run.cases) - len(errors),
            "targets": sorted({c["target_error"] for c in run.cases if c.get("target_error")}),
            "reached": sum(1 for c in run.cases if c["reached_target"]),
            "median": errors[len(errors) // 2] if errors else None,
            "p90": errors[int(0.9 * (len(errors) - 1))] if errors else None,
            "widest": errors[-1] if errors else None,
            "median_of_known": statistics.median(errors) if errors else None}


def scaled_with_baselines(run) -> list[tuple[dict, dict | None]]:
    """(case, its one-replica baseline when it is shown first) for each scaled case, the baseline once."""
    baselines = {c["case"]: c for c in run.cases}
    shown, found = set(), []
    for case in sorted(run.scaled, key=lambda c: (natural_key(c["case"]), c.get("replicas") or 1)):
        base = baselines.get((case.get("scaling") or {}).get("baseline"))
        found.append((case, base if base is not None and base["case"] not in shown else None))
        if base is not None:
            shown.add(base["case"])
    return found


class View:
    """The merged runs a report shows, and how it labels a case's model: with its device and backend where the runs
    differ in them."""

    def __init__(self, runs):
        self.runs = runs
        self.cases = [c for r in runs for c in r.cases]
        self.multi_device = len({c["device"] for c in self.cases}) > 1
        self.multi_backend = len({c.get("backend") for c in self.cases}) > 1

    def label(self, case) -> str:
        where = ([case["device"]] if self.multi_device else []) + ([case["backend"]] if self.multi_backend else [])
        return f"{case['model']} ({', '.join(where)})" if where else case["model"]

    def labels(self, cases) -> list[str]:
        return sorted({self.label(c) for c in cases}, key=natural_key)
