"""The report: tables from a real saved run, CSV round trip, plots, HTML, comparison verdicts, bad input."""
import contextlib
import copy
import csv
import datetime
import io
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from bench.core.records import PHASES
from bench.report.__main__ import main as report_main
from bench.report.compare import compare, compare_ratios, ratio_rows
from bench.report.noise import (
    FAST_STEP_DRIFT,
    STEP_DRIFT,
    Spread,
    band_text,
    machine_shift,
    one_pass_drift,
    ratio_noise,
    verdict,
)
from bench.report.render import md_table
from bench.report.runs import RunNoise, load_run, run_noise
from bench.report.tables import tables

FIXTURE = Path(__file__).parent / "fixtures" / "smoke_run.json"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _fixture_cases():
    """Each case of the fixture (a smoke run of 3 passes) as the report sees it: its passes merged by hand."""
    passes = defaultdict(list)
    for bench in json.loads(FIXTURE.read_text())["benchmarks"]:
        if "case" in bench["extra_info"]:
            passes[bench["extra_info"]["case"]].append(bench["extra_info"])
    cases = []
    for infos in passes.values():
        assert sorted(info["pass"] for info in infos) == [1, 2, 3]
        pooled = [t for info in infos for t in info["round_ms"]]
        p50 = statistics.geometric_mean(info["latency_ms"]["p50"] for info in infos)
        cases.append(dict(infos[0], latency_p50_ms=p50, throughput=infos[0]["batch_size"] / (p50 / 1e3),
                          rounds=len(pooled), latency_p90_ms=float(np.percentile(pooled, 90)) if len(pooled) >= 64
                          else None))
    return cases


@pytest.fixture(scope="module")
def fixture_report(tmp_path_factory):
    """The fixture's report in every format, with its plots, and what it printed: rendered once for the tests that
    read it as it is."""
    out = tmp_path_factory.mktemp("report")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert report_main([str(FIXTURE), "--out", str(out), "--format", "md,csv,html"]) == 0
    return SimpleNamespace(out=out, md=(out / "report.md").read_text(), printed=printed.getvalue())


def _every_case_md(path) -> str:
    """The tables of every case (report.html's, folded) as markdown, spaces squeezed."""
    return re.sub(" +", " ", "\n".join(md_table(table) for table in tables([load_run(str(path))])[1]))


def test_machine_table_has_the_ceiling_its_probe_and_the_harness_overhead(fixture_report):
    md = fixture_report.md
    data = json.loads(FIXTURE.read_text())
    machine = data["machine_info"]["cnnbench"]
    ceiling = (f"| ceiling, float32 (TFLOP/s) | {machine['peak_flops_per_s']['float32'] / 1e12:.3g} "
               f"({machine['peak_probe']['float32']}) |")
    md = re.sub(" +", " ", md)
    overhead = next(b["extra_info"] for b in data["benchmarks"] if b["group"] == "harness overhead")
    assert ceiling in md and f"{(1 / overhead['throughput_ratio'] - 1) * 100:+.1f}% (60 pairs)" in md


def test_mfu_over_100_percent_blames_the_ceiling_not_the_model(tmp_path):
    data = json.loads(FIXTURE.read_text())
    for bench in data["benchmarks"]:
        if bench["extra_info"].get("model") == "lenet5":
            bench["extra_info"]["mfu"] = 1.94
    (tmp_path / "run.json").write_text(json.dumps(data))
    assert report_main([str(tmp_path / "run.json"), "--out", str(tmp_path), "--no-plots"]) == 0
    md = (tmp_path / "report.md").read_text()
    assert "over the ceiling: it read low" in md and "194.0" not in md


def test_a_run_of_the_first_schema_still_reports(tmp_path):
    v1 = FIXTURE.with_name("smoke_run_v1.json")
    assert report_main([str(v1), "--out", str(tmp_path), "--no-plots"]) == 0
    md = re.sub(" +", " ", (tmp_path / "report.md").read_text())
    cases = {b["extra_info"]["case"]: b["extra_info"] for b in json.loads(v1.read_text())["benchmarks"]
             if "case" in b["extra_info"]}
    lenet = cases["lenet5-infer-bs1-noxla-float32"]
    # no interval of its medians (schema 1 recorded none): "±?", beside the figures it did record
    every = _every_case_md(v1)
    assert f"| lenet5 | {lenet['throughput']:,.1f} ±? n={lenet['rounds']} |" in every
    latency = lenet["latency_ms"]
    percentiles = " / ".join(f"{latency[p]:.2f}" for p in ("p50", "p90", "p99"))
    assert f"| lenet5 | {percentiles} (n={lenet['rounds']}) |" in every
    assert "| lenet5 | 32x32x1 | 61,706 | 61,706 | 416.5 k | 852.4 k | 0.03 | - |" in every  # it recorded no depth
    assert f"| lenet5 | {lenet['throughput']:,.1f} ±? |" in md  # the throughput table a person reads
    assert "| cases | 12 |" in md and "| complete | yes |" in md


def test_report_tables_hold_the_fixtures_numbers(fixture_report):
    md = fixture_report.md
    lenet = next(c for c in _fixture_cases() if c["case"] == "lenet5-infer-bs8-noxla-float32")
    assert f"{lenet['throughput']:,.1f} ±" in md
    assert lenet["rounds"] < 662  # so the p99 is "-", as is a p90 below 64 rounds
    p90 = f"{lenet['latency_p90_ms']:.2f}" if lenet["rounds"] >= 64 else "-"
    every = _every_case_md(FIXTURE)
    assert f"{lenet['latency_p50_ms']:.2f} / {p90} / - (n={lenet['rounds']})" in every
    on = next(c for c in _fixture_cases() if c["case"] == "lenet5-infer-bs8-xla-float32")
    assert f"{on['throughput'] / lenet['throughput']:.2f}x" in md  # what XLA buys
    widest = max((line for line in md.splitlines() if line.startswith("|")), key=len)
    assert len(widest) <= 160, widest  # every table reads in a 160-column window; captions are prose and wrap
    cost_row = "| lenet5 | 32x32x1 | 61,706 | 61,706 | 416.5 k | 852.4 k | 0.03 | 5 |"  # MACs, FLOPs
    assert cost_row in every and "| lenet5 | 61,706 | 416.5 k | 852.4 k |" in re.sub(" +", " ", md)
    assert "*What XLA and each precision buy" in md and "*Where the time goes" in md
    # one row per model in each table a person reads; every case's rows are in report.html, folded
    throughput = md[md.index("*Throughput"):].split("\n\n")[1]
    assert sum(line.startswith("| lenet5 ") for line in throughput.splitlines()) == 1
    page = (fixture_report.out / "report.html").read_text()
    assert page.count("<details>") == len(tables([load_run(str(FIXTURE))])[1]) > 0
    assert "![Throughput against batch size, by family]" in md
    cases = _fixture_cases()
    out = fixture_report.printed
    assert f"{len(cases)} cases of {len({c['model'] for c in cases})} models" in out
    assert "report.html" in out and max(len(line) for line in out.splitlines()) <= 120


def test_csv_round_trips(fixture_report):
    with open(fixture_report.out / "report.csv") as f:
        rows = list(csv.DictReader(f))
    cases = {c["case"]: c for c in _fixture_cases()}
    assert len(rows) == len(cases) >= 12
    for row in rows:
        case = cases[row["case"]]
        assert float(row["throughput"]) == pytest.approx(case["throughput"], rel=1e-12)
        assert float(row["latency_p50_ms"]) == pytest.approx(case["latency_p50_ms"], rel=1e-12)
        assert int(row["rounds"]) == case["rounds"] and (row["latency_p99_ms"] == "") == (case["rounds"] < 662)
        assert 0 < float(row["median_error"]) < 1  # from the spread between the passes
        assert int(row["macs_per_sample"]) == case["macs_per_sample"] and int(row["depth"]) == case["depth"]


def test_plots_are_pngs_and_html_embeds_them(fixture_report):
    import matplotlib.image

    tmp_path = fixture_report.out

    names = ("throughput.png", "speedup_xla.png", "speedup_mixed_bfloat16.png", "roofline.png", "macs_vs_latency.png")
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(names)
    for name in names:
        assert (tmp_path / "plots" / name).read_bytes().startswith(PNG_MAGIC)
        height, width, _ = matplotlib.image.imread(tmp_path / "plots" / name).shape
        assert 800 <= width <= 1500 and height <= 2000  # shown at its size in a browser window, not shrunk
    from html.parser import HTMLParser

    class Collect(HTMLParser):
        tags, images = [], []

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)
            if tag == "img":
                self.images.append(dict(attrs)["src"])

    page = Collect()
    page.feed((tmp_path / "report.html").read_text())
    assert page.tags.count("table") >= 5 and len(page.images) == len(names)
    assert all(src.startswith("data:image/png;base64,") for src in page.images)


def _pairs_by_hand(vary, base_value, new_value, mode="infer"):
    cases = {(c["model"], c["mode"], c["precision"], c["xla"], c["batch_size"]): c for c in _fixture_cases()}
    position = {"precision": 2, "xla": 3}[vary]
    return [case["throughput"] / cases[(*key[:position], base_value, *key[position + 1:])]["throughput"]
            for key, case in cases.items() if key[position] == new_value and key[1] == mode
            and (*key[:position], base_value, *key[position + 1:]) in cases]


def test_the_report_opens_with_its_findings_and_their_numbers(fixture_report):
    md = fixture_report.md
    assert md.index("## Findings") < md.index("## Tables") and md.index("*The fastest model") < md.index("## Tables")
    findings = md[md.index("## Findings"):md.index("## Tables")]
    for title, ratios in (("XLA", _pairs_by_hand("xla", False, True)),
                          ("mixed_bfloat16", _pairs_by_hand("precision", "float32", "mixed_bfloat16"))):
        line = next(line for line in findings.splitlines() if line.startswith(f"- **What {title}"))
        assert f"inference median {statistics.median(ratios):.2f}x over {len(ratios)} cases" in line
        how = f"unpaired, from two cases minutes apart in {len(ratios)}, ±"
        assert f"({min(ratios):.2f}x to {max(ratios):.2f}x; {how}" in line
    example = "**The 1x1-bottleneck example** (inference, float32): conv5x5 has 9.7x the MACs of conv5x5_bottleneck"
    assert example in findings and findings.count("1x1-bottleneck example") == 1  # each finding titled once
    titles = re.findall(r"^- \*\*(.+?)\*\*", findings, re.M)
    assert len(titles) == len(set(titles)), titles


def test_the_fastest_model_of_each_family_is_named_at_each_batch_size(fixture_report):
    md = re.sub(" +", " ", fixture_report.md)
    reference = [c for c in _fixture_cases() if (c["mode"], c["precision"], c["xla"]) == ("infer", "float32", False)
                 and c["family"] == "resnet-cifar"]
    found = next(line for line in md.splitlines() if line.startswith("| resnet-cifar |"))
    for batch in sorted({c["batch_size"] for c in reference}):
        best = max((c for c in reference if c["batch_size"] == batch), key=lambda c: c["throughput"])
        assert f"{best['model']} ({best['throughput']:,.4g}/s)" in found
    assert "| lenet |" not in md  # a family of one model has nothing to rank


def test_efficiency_says_when_a_models_batch_is_not_the_largest_and_why(tmp_path):
    data = json.loads(FIXTURE.read_text())
    dropped = "lenet5-infer-bs8-noxla-float32"
    data["benchmarks"] = [b for b in data["benchmarks"] if b["extra_info"].get("case") != dropped]
    data["cnnbench"]["skipped"] = [{"case": dropped, "model": "lenet5", "mode": "infer", "batch_size": 8, "xla": False,
                                    "precision": "float32", "reason": "outside the time budget"}]
    (tmp_path / "run.json").write_text(json.dumps(data))
    assert report_main([str(tmp_path / "run.json"), "--out", str(tmp_path), "--no-plots"]) == 0
    every = _every_case_md(tmp_path / "run.json")
    assert "| lenet5 | infer | float32 | off | 1 (not 8: bs 8 outside the time budget) |" in every
    assert "| lenet5 | infer | float32 | on | 8 |" in every


def test_the_throughput_plot_draws_only_settings_with_two_batch_sizes_or_more(tmp_path):
    from bench.report.plots import throughput_by_family

    written = {}
    one = [{"device": "CPU", "family": "f", "model": "m", "mode": "train", "precision": "float32", "xla": False,
            "batch_size": 2, "throughput": 10.0}]
    assert throughput_by_family(one, str(tmp_path), written.__setitem__) is None and not written
    two = one + [dict(one[0], batch_size=8, throughput=30.0)]
    assert throughput_by_family(two, str(tmp_path), written.__setitem__) == "plots/throughput.png" and written


def _case(throughput, error, name="m-infer-bs1-noxla-float32", pass_p50_ms=None, speeds=()):
    return {"device": "CPU", "case": name, "throughput": throughput, "latency_p50_ms": 1000 / throughput,
            "median_error": error, "pass_p50_ms": pass_p50_ms, "machine_speeds_flops": list(speeds)}


def test_verdicts_use_both_medians_intervals_when_nothing_else_is_known():
    assert verdict(_case(100, 0.001), _case(110, 0.001))[2] == "faster"
    assert verdict(_case(100, 0.001), _case(90, 0.001))[2] == "slower"
    assert verdict(_case(100, 0.001), _case(100.5, 0.001))[2] == "within noise"  # under the 1% floor
    assert verdict(_case(100, 0.04), _case(105, 0.04))[2] == "within noise"  # a 5% change inside ±5.7% (95%)
    assert verdict(_case(100, 0.04), _case(107, 0.04))[2] == "within noise"  # and inside its ±7.4% at 99%
    assert verdict(_case(100, 0.04), _case(109, 0.04))[2] == "faster"
    assert verdict(_case(100, None), _case(50, 0.001))[2] == "within noise"  # one round: nothing is known


def test_the_spread_between_passes_is_pooled_over_the_cases():
    # Three passes of two cases; log pass medians spread by +-0.1 around each case's mean
    cases = [_case(100, 0.01, pass_p50_ms=[10 * math.exp(d) for d in (-0.1, 0, 0.1)]),
             _case(50, 0.01, pass_p50_ms=[20 * math.exp(d) for d in (0.1, 0, -0.1)])]
    noise = run_noise(cases)  # steps of 10 and 20 ms: one class
    assert noise.unit == "pass" and list(noise.spreads) == ["slow"]
    assert noise.spreads["slow"].dof == 4 and noise.spreads["slow"].sigma == pytest.approx(math.sqrt(4 * 0.01 / 4))
    assert noise.error(cases[0]) == pytest.approx(2.776 * 0.1 / math.sqrt(3), rel=1e-3)
    # A 20% change is within the band of two such runs; a halving (-69% in log terms) is not
    assert verdict(_case(100, 0.01, pass_p50_ms=[1] * 3), _case(80, 0.01, pass_p50_ms=[1] * 3), noise, noise)[2] \
        == "within noise"
    assert verdict(_case(100, 0.01, pass_p50_ms=[1] * 3), _case(50, 0.01, pass_p50_ms=[1] * 3), noise, noise)[2] \
        == "slower"


def _run(speed, cores=2, throughput=100.0):
    cases = [_case(throughput, 0.01, pass_p50_ms=[1] * 3, speeds=[speed * f for f in (0.98, 1.0, 1.02)])]
    machine = {"device": "CPU", "tensorflow_version": "2.21.0", "cpu_cores_usable": cores}
    return SimpleNamespace(cases=cases, machine=machine, name="run")


def test_the_machines_own_change_of_speed_is_taken_out_of_the_verdict():
    noise = RunNoise({"slow": Spread(0.05, 48)}, None, "passes", "pass")
    base, busy = _run(120e9), _run(90e9, throughput=75.0)  # the host was busy: the probe and the case slow alike
    shift, error, note = machine_shift(base, busy)
    assert shift == pytest.approx(math.log(0.75)) and 0 < error < 0.1 and "corrected for" in note
    assert verdict(base.cases[0], busy.cases[0], noise, noise)[2] == "slower"  # -29% in log terms, band 8%
    assert verdict(base.cases[0], busy.cases[0], noise, noise, shift, error)[2] == "within noise"
    # One core against two is another machine: nothing is corrected, and the slowdown stays a verdict
    assert machine_shift(base, _run(60e9, cores=1))[:2] == (0.0, 0.0)


def test_the_spread_between_worker_processes_is_pooled_by_step_class_without_the_runs_own_offset():
    def logs(*values):
        return [math.exp(v) for v in values]

    # steps of 1 ms, each in the run's own process (first, 0.2 above the fresh ones: its history) and two workers
    fast = [_case(1000, 0.01, pass_p50_ms=[1.0] * 3) | {"process_p50_ms": logs(0.2, d, -d)} for d in (0.05, 0.1)]
    slow = _case(50, 0.01, pass_p50_ms=[20.0]) | {"process_p50_ms": [20.0]}  # a step of 20 ms, one process
    noise = run_noise([*fast, slow])
    sigma = math.sqrt((2 * 0.05 ** 2 + 2 * 0.1 ** 2) / 3)  # 4 degrees of freedom, less 1 for the offset
    assert noise.unit == "process" and list(noise.spreads) == ["fast"] and noise.spreads["fast"].dof == 3
    assert noise.spreads["fast"].sigma == pytest.approx(sigma)
    assert noise.error(fast[0]) == pytest.approx(3.182 * sigma / math.sqrt(3))  # the mean of its three processes
    assert noise.error(slow) == pytest.approx(3.182 * sigma)  # no slow step measured: the wider class stands in
    assert "between worker processes" in noise.source and "3 degrees of freedom" in noise.source
    # paired ratios: each process knows its own exactly; two settings' disagree by 10%, two models' by 50%
    def ratios(*values):
        return [{"ratio": r, "ci95": [r, r]} for r in values]

    case = _case(1000, 0.01) | {"model": "m", "process_p50_ms": [1, 1], "paired": [
        {"against": "m-infer-bs1-noxla-float32", "by_process": ratios(1.0, 1.1)},
        {"against": "n-infer-bs1-xla-float32", "by_process": ratios(1.0, 1.5)}]}
    drift = ratio_noise([case])
    assert drift.unit == "process" and drift.brief == "measured between the run's worker processes"
    assert drift.spreads["fast"].sigma == pytest.approx(math.log(1.1) / math.sqrt(2))
    assert drift.spreads["fast, two models"].sigma == pytest.approx(math.log(1.5) / math.sqrt(2))
    widened = drift.widened({"ratio": 1.05, "ci95": [1.05, 1.05], "ci99": [1.05, 1.05]}, 1, step_ms=1.0)
    half = 12.706 * math.log(1.1) / math.sqrt(2)  # one degree of freedom
    assert widened["ci95"] == pytest.approx([1.05 * math.exp(-half), 1.05 * math.exp(half)])
    widened = drift.widened({"ratio": 1.2, "ci95": [1.2, 1.2], "ci99": [1.2, 1.2]}, 1, 1.0, "two models")
    assert widened["ci95"][1] == pytest.approx(1.2 * math.exp(12.706 * math.log(1.5) / math.sqrt(2)))


def test_one_pass_runs_fall_back_on_the_drift_of_the_machines_speed_and_of_the_step_beyond_it():
    speeds = [1e11 * f for f in (1.0, 1.1, 0.9, 1.0, 5.0)]
    noise = run_noise([_case(100, 0.01, pass_p50_ms=[10], speeds=speeds)])
    assert not noise.spreads and noise.probe_sigma == pytest.approx(1.4826 * math.log(1.1), rel=0.05)  # 5x ignored
    assert "fallback constants" in noise.source
    slow, fast = _case(100, 0.01), _case(1000, 0.01)  # steps of 10 ms and of 1 ms
    assert noise.error(slow) == pytest.approx(math.hypot(1.96 * math.hypot(noise.probe_sigma, STEP_DRIFT), 0.01))
    assert noise.error(fast) == pytest.approx(math.hypot(1.96 * math.hypot(noise.probe_sigma, FAST_STEP_DRIFT), 0.01))
    # 30% slower between two runs on a steadier machine: a verdict for the 10 ms step, not for the 1 ms one
    steady = run_noise([_case(100, 0.01, pass_p50_ms=[10], speeds=[1e11 * f for f in (1.0, 1.01, 0.99, 1.0)])])
    assert verdict(slow, _case(70, 0.01), steady, steady)[2] == "slower"
    assert verdict(fast, _case(700, 0.01), steady, steady)[2] == "within noise"
    assert run_noise([_case(100, 0.01)]).probe_sigma is None


def test_skipped_cases_are_listed_with_their_reason(fixture_report, tmp_path, capsys):
    assert "Cases not measured" not in fixture_report.md
    data = json.loads(FIXTURE.read_text())
    reason = "outside the time budget"
    data["cnnbench"]["skipped"] = [{"case": f"vgg19-infer-bs8-noxla-{p}", "reason": reason}
                                   for p in ("float32", "mixed_bfloat16")]
    (tmp_path / "run.json").write_text(json.dumps(data))
    assert report_main([str(tmp_path / "run.json"), "--out", str(tmp_path), "--no-plots"]) == 0
    md = re.sub(" +", " ", (tmp_path / "report.md").read_text())
    assert "*Cases not measured, by reason" in md and f"| {reason} | 2 |" in md
    assert f"vgg19-infer-bs8-noxla-float32 | {reason}" in _every_case_md(tmp_path / "run.json")
    assert "skipped: 2 outside the time budget" in capsys.readouterr().out


def test_what_the_budget_left_out_is_listed_by_priority_with_the_budget_that_admits_it(tmp_path):
    data = json.loads(FIXTURE.read_text())
    data["cnnbench"]["plan"] = dict(data["cnnbench"].get("plan") or {}, budget_minutes=20, priority=[
        {"tier": "each model's first inference case", "cases": 32, "outside": 0, "admits_all_minutes": 3},
        {"tier": "training", "cases": 64, "outside": 5, "admits_all_minutes": 22},
        {"tier": "the runtimes' int8", "cases": 92, "outside": 92, "admits_all_minutes": 31}])
    (tmp_path / "run.json").write_text(json.dumps(data))
    assert report_main([str(tmp_path / "run.json"), "--out", str(tmp_path), "--no-plots"]) == 0
    md = re.sub(" +", " ", (tmp_path / "report.md").read_text())
    assert "| 1 | each model's first inference case | 32 | 32 | |" in md
    assert "| 2 | training | 59 | 64 | --time-budget 22 |" in md
    assert "| 3 | the runtimes' int8 | 0 | 92 | --time-budget 31 |" in md
    assert ("**Left out by the time budget** (" in md and "in its priority: 2 training, 5 of 64 (`--time-budget 22` "
            "admits all up to it); 3 the runtimes' int8, 92 of 92 (`--time-budget 31` admits all up to it)." in md)


def test_the_report_says_where_the_time_went_and_which_precisions_ran(fixture_report):
    data = json.loads(FIXTURE.read_text())["cnnbench"]
    spent, speedup = data["time_s"], json.loads(FIXTURE.read_text())["machine_info"]["cnnbench"]["precision_speedup"]
    assert sum(spent.get(phase, 0) for phase in (*PHASES, "other")) == pytest.approx(spent["total"], abs=0.1)
    md = re.sub(" +", " ", fixture_report.md)
    timed_share = f"| timed rounds | {spent['timed']:.0f} s | {spent['timed'] / spent['total']:.0%} |"
    assert "*Where the run's time went" in md and timed_share in md
    assert "*Precisions" in md and all(f"| {p} | {r:.2f}x" in md for p, r in speedup.items())
    assert f"{spent['total'] / 60:.1f} min, {spent['timed'] / spent['total']:.0%} of it in timed rounds" in (
        fixture_report.printed)


def _run_file(tmp_path, name, scale, drop=None):
    data = json.loads(FIXTURE.read_text())
    data = copy.deepcopy(data)
    data["benchmarks"] = [b for b in data["benchmarks"]
                          if "case" in b["extra_info"] and b["extra_info"]["case"] != drop]
    for b in data["benchmarks"]:
        b["extra_info"]["throughput"] *= scale
        b["extra_info"]["latency_ms"] = {k: v and v / scale for k, v in b["extra_info"]["latency_ms"].items()}
    data["cnnbench"]["run_name"] = name
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data))
    return path


def test_compare_lists_every_case_and_fails_above_the_threshold(tmp_path, capsys):
    base = _run_file(tmp_path, "base", 1.0, drop="lenet5-infer-bs1-xla-float32")
    new = _run_file(tmp_path, "new", 0.5)
    caption, rows, slower = compare(load_run(str(base)), load_run(str(new)))
    verdicts = {row.case: row.verdict for row in rows}
    assert verdicts["lenet5-infer-bs1-xla-float32"] == "only in new"
    assert "slower" in verdicts.values() and "faster" not in verdicts.values() and len(rows) == len(_fixture_cases())
    assert all(row.change == pytest.approx(-0.5) for row in rows if row.verdict == "slower")  # numbers, not text
    assert report_main(["--compare", str(base), str(new), "--out", str(tmp_path), "--fail-above", "40"]) == 1
    capsys.readouterr()
    assert report_main(["--compare", str(base), str(new), "--out", str(tmp_path), "--fail-above", "60"]) == 0
    table = (tmp_path / "compare.md").read_text()
    assert "-50.0" in table and len(table.splitlines()) == len(rows) + 4  # caption, blank, headers, rule
    assert "(base: between the run's passes (one process): steps under 10 ms" in table
    assert "; new: between the run's passes (one process): steps under 10 ms" in table
    same, _, _ = compare(load_run(str(new)), load_run(str(_run_file(tmp_path, "again", 0.5))))
    assert same.count("between the run's passes") == 1 and "(both runs: between the run's passes" in same
    # the terminal: counts, the largest changes and where the table went; not the table
    printed = capsys.readouterr().out
    assert max(map(len, printed.splitlines())) <= 120
    out = printed.replace("\n  ", " ").splitlines()  # its lines, unwrapped
    counts = Counter(row[-1] for row in rows)
    assert out[0] == (f"new against base: {len(rows)} cases; {counts['slower']} slower, 0 faster, "
                      f"{counts['within noise']} within noise, 1 only in new")
    assert out[1].startswith("largest slower: ") and out[1].count("-50.0% (band ") == min(5, counts["slower"])
    assert out[-1] == f"wrote {tmp_path / 'compare.md'} (every case, its noise band and verdict)"
    assert len(out) == 3


def _run_report(*args, cwd):
    return subprocess.run([sys.executable, "-m", "bench.report", *args], capture_output=True, text=True, cwd=cwd,
                          env={"PYTHONPATH": str(Path(__file__).parent.parent), "PATH": ""})


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ('{"benchmarks": [', "not valid JSON, truncated?"),
    ('{"results": []}', "not a pytest-benchmark run"),
    ('{"benchmarks": [{"name": "x", "extra_info": {}}]}', "not of cnnbench"),
])
def test_bad_run_files_are_named_with_exit_2(tmp_path, content, message):
    path = tmp_path / "run.json"
    if content is not None:
        path.write_text(content)
    done = _run_report(str(path), cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert str(path) in done.stderr and message in done.stderr and "Traceback" not in done.stderr


def test_no_saved_run_says_how_to_make_one(tmp_path):
    done = _run_report(cwd=tmp_path)
    assert done.returncode == 2 and "pytest bench/ --benchmark-autosave" in done.stderr


def test_run_numbers_and_the_newest_run_are_found(tmp_path):
    storage = tmp_path / ".benchmarks" / "Linux-CPython-3.11-64bit"
    storage.mkdir(parents=True)
    data = json.loads(FIXTURE.read_text())
    for number, name in (("0003", "run-three"), ("0004", "run-four")):
        data["cnnbench"]["run_name"] = name
        path = storage / f"{number}_abc_20261122_00000{number[-1]}.json"
        path.write_text(json.dumps(data))
    os.utime(storage / "0003_abc_20261122_000003.json", (time.time() + 60,) * 2)  # the newest by time, not number
    cases = len(_fixture_cases())
    for args, chosen in ((["0003"], "run-three"), (["4"], "run-four"), ([], "run-three")):
        done = _run_report(*args, "--out", "out", "--no-plots", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"{cases} cases of 5 models from {chosen} on ")
        assert f"| run | {chosen} |" in re.sub(" +", " ", (tmp_path / "out" / "report.md").read_text())
        with open(tmp_path / "out" / "report.csv") as f:
            assert {row["run"] for row in csv.DictReader(f)} == {chosen}
    done = _run_report("7", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr == (
        "python -m bench.report: error: no saved run '7' under .benchmarks/ (give a path, a run number such as 0003 "
        "or a run name)\n")


def test_report_never_imports_tensorflow(tmp_path):
    code = (f"import sys; from bench.report.__main__ import main; main(['{FIXTURE}', '--out', '{tmp_path}']); "
            "sys.exit('tensorflow' in sys.modules or 'keras' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr


def _as_jax_run(data, speedup):
    """The fixture as if run on JAX, every case `speedup` times faster: JAX has only XLA-on cases."""
    jax_run = copy.deepcopy(data)
    machine = jax_run["machine_info"]["cnnbench"]
    machine.pop("tensorflow_version")
    machine.update(keras_backend="jax", jax_version="0.10.2")
    jax_run["cnnbench"]["run_name"] = "jax-run"
    jax_run["benchmarks"] = [b for b in jax_run["benchmarks"] if b["extra_info"].get("xla", True)]
    for bench in jax_run["benchmarks"]:
        info = bench["extra_info"]
        if "case" in info:
            info["backend"] = "jax"
            info["latency_ms"]["p50"] /= speedup
            info["round_ms"] = [t / speedup for t in info["round_ms"]]
    return jax_run


def test_runs_of_two_backends_report_side_by_side_with_what_jax_buys(tmp_path):
    data = json.loads(FIXTURE.read_text())
    (tmp_path / "tf.json").write_text(json.dumps(data))
    (tmp_path / "jax.json").write_text(json.dumps(_as_jax_run(data, 2.0)))
    assert report_main([str(tmp_path / "tf.json"), str(tmp_path / "jax.json"), "--out", str(tmp_path),
                        "--no-plots"]) == 0
    md = re.sub(" +", " ", (tmp_path / "report.md").read_text())
    table = md[md.index("*What jax buys over TensorFlow:"):]
    table = table[:table.index("\n\n*")]
    lenet = {c["case"]: c for c in _fixture_cases()}
    on, off = lenet["lenet5-infer-bs8-xla-float32"], lenet["lenet5-infer-bs8-noxla-float32"]
    for setting, base in (("on", on), ("off", off)):
        ratio = 2.0 * on["throughput"] / base["throughput"]
        start = f"| lenet5 | infer | float32 | 8 | {setting} |"
        row = next(line for line in table.splitlines() if line.startswith(start))
        assert f"| {base['throughput']:,.1f} ±" in row and f"| {2 * on['throughput']:,.1f} ±" in row
        assert f"| {ratio:.2f}x |" in row and row.rstrip(" |").endswith("faster")
    assert "| jax 0.10.2 |" in md and f"| tensorflow {data['machine_info']['cnnbench']['tensorflow_version']} |" in md
    assert "| lenet5 (jax) |" in md and "| lenet5 (tensorflow) |" in md  # one row per backend in the speed tables
    finding = "**What jax buys over TensorFlow** (throughput ratio): inference, against TensorFlow with XLA off: median"
    assert finding in md


def test_the_default_report_puts_the_newest_run_beside_the_newest_of_each_other_backend(tmp_path):
    storage = tmp_path / "storage" / "Linux-CPython-3.11-64bit"
    storage.mkdir(parents=True)
    data = json.loads(FIXTURE.read_text())
    elsewhere = _as_jax_run(data, 3.0)
    elsewhere["commit_info"]["id"] = "another commit"
    elsewhere["cnnbench"]["run_name"] = "jax-of-another-commit"
    for name, run in (("0001_a", elsewhere), ("0002_b", _as_jax_run(data, 2.0)), ("0003_c", data)):
        (storage / f"{name}_20261201_000000.json").write_text(json.dumps(run))
        time.sleep(0.01)  # newest by modification time
    assert report_main(["--storage", str(tmp_path / "storage"), "--out", str(tmp_path), "--no-plots"]) == 0
    md = (tmp_path / "report.md").read_text()
    assert "*What jax buys over TensorFlow:" in md and "jax-run" in md and "jax-of-another-commit" not in md


def test_the_default_report_merges_only_the_runs_of_one_session_and_says_so(tmp_path, capsys):
    storage = tmp_path / "storage" / "Linux-CPython-3.11-64bit"
    storage.mkdir(parents=True)
    data = json.loads(FIXTURE.read_text())
    started = datetime.datetime.fromisoformat(data["datetime"])
    earlier = _as_jax_run(data, 2.0)  # a JAX run three hours before: another session, as a test run was
    earlier["datetime"] = (started - datetime.timedelta(hours=3)).isoformat()
    (storage / "0001_a_20261201_000000.json").write_text(json.dumps(earlier))
    time.sleep(0.01)
    (storage / "0002_b_20261201_000000.json").write_text(json.dumps(data))
    assert report_main(["--storage", str(tmp_path / "storage"), "--out", str(tmp_path), "--no-plots"]) == 0
    md = (tmp_path / "report.md").read_text()
    assert "jax" not in md and "**Runs**" not in md and capsys.readouterr().out.startswith(
        f"{len(_fixture_cases())} cases of 5 models from {data['cnnbench']['run_name']} on ")
    earlier["datetime"] = (started - datetime.timedelta(minutes=25)).isoformat()  # the same session
    (storage / "0001_a_20261201_000000.json").write_text(json.dumps(earlier))
    os.utime(storage / "0002_b_20261201_000000.json", (time.time() + 60,) * 2)  # still the newest
    assert report_main(["--storage", str(tmp_path / "storage"), "--out", str(tmp_path), "--no-plots"]) == 0
    md = (tmp_path / "report.md").read_text()
    name = data["cnnbench"]["run_name"]
    assert (f"- **Runs**: {name} (tensorflow), the newest run, is shown with jax-run (jax): the newest run of each "
            "other backend on its device and commit, started within 2 hours of it (name runs to choose others: "
            "python -m bench.report 0001 0002).") in md
    assert "*What jax buys over TensorFlow:" in md


def test_a_ratio_timed_round_by_round_is_reported_with_its_own_interval(tmp_path):
    """Hand-made pairs: the XLA cases of lenet5 timed beside their XLA-off twins, ratios known."""
    data = json.loads(FIXTURE.read_text())
    ratios = {"lenet5-infer-bs1-xla-float32": [1.5] * 30,  # 1.50x, no spread: faster
              "lenet5-infer-bs8-xla-float32": [0.9, 1.1] * 15}  # straddles 1: within noise
    for bench in data["benchmarks"]:
        info = bench["extra_info"]
        if info.get("case") in ratios:
            info["paired"] = [{"against": info["case"].replace("-xla-", "-noxla-"), "ratios": ratios[info["case"]]}]
    (tmp_path / "run.json").write_text(json.dumps(data))
    assert report_main([str(tmp_path / "run.json"), "--out", str(tmp_path), "--no-plots"]) == 0
    md = re.sub(" +", " ", (tmp_path / "report.md").read_text())
    every = _every_case_md(tmp_path / "run.json")
    row = next(line for line in every.splitlines() if line.startswith("| lenet5 | mode infer, precision float32 |"))
    assert row == "| lenet5 | mode infer, precision float32 | 1.50x ±0% | 1.00x ±10% |"  # 3 passes of 30, pooled
    grid = md[md.index("*What XLA and each precision buy"):].split("\n\n")[1]
    assert grid.splitlines()[0].startswith("| model | XLA: bs1 | XLA: bs8 |")
    row = next(line for line in grid.splitlines() if line.startswith("| lenet5 |"))
    assert row.startswith("| lenet5 | 1.50x ±0% ▲ | 1.00x ±10% = |")  # with the verdicts
    line = next(line for line in md.splitlines() if line.startswith("- **What XLA"))
    others = len(_pairs_by_hand("xla", False, True)) - 2
    assert (f"paired round by round in 2, ±5% typical, 1 within ±5% (±5% from the pairs alone, the rest their drift "
            f"between runs, measured between the run's passes, in one process); unpaired, from two cases minutes apart "
            f"in {others}, ±") in line
    assert "*What XLA buys: throughput with XLA over without (above 1.00x: XLA is faster); ± its 95% interval" in every


def _paired_run(tmp_path, name, ratios_by_pass, case="lenet5-infer-bs1-xla-float32"):
    """The fixture with `case` timed beside its XLA-off twin: pass k's paired ratios ratios_by_pass[k - 1]."""
    data = json.loads(FIXTURE.read_text())
    data["cnnbench"]["run_name"] = name
    for bench in data["benchmarks"]:
        info = bench["extra_info"]
        if info.get("case") == case and ratios_by_pass[info["pass"] - 1]:
            info["paired"] = [{"against": case.replace("-xla-", "-noxla-"), "ratios": ratios_by_pass[info["pass"] - 1]}]
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data))
    return path


def test_a_paired_ratio_s_interval_holds_the_drift_between_its_passes(tmp_path):
    """Each pass knows its ratio exactly, but the passes disagree: the interval is theirs, not the pairs'."""
    run = load_run(str(_paired_run(tmp_path, "drifting", [[1.0] * 30, [1.1] * 30, [1.2] * 30])))
    paired = next(c for c in run.cases if c["case"] == "lenet5-infer-bs1-xla-float32")["paired"][0]
    assert paired["ratio"] == 1.1 and paired["in_run95"] == [1.1, 1.1]  # the 90 pairs alone: ±0%
    sigma = statistics.stdev(math.log(r) for r in (1.0, 1.1, 1.2))
    assert run.ratio_noise.spreads["fast"].dof == 2 and run.ratio_noise.spreads["fast"].sigma == pytest.approx(sigma)
    drift = 4.303 * sigma / math.sqrt(3)  # Student's t for 2 degrees of freedom, the mean of 3 passes
    assert paired["ci95"] == pytest.approx([1.1 * math.exp(-drift), 1.1 * math.exp(drift)], rel=1e-3)
    steady = load_run(str(_paired_run(tmp_path, "steady", [[0.9, 1.1] * 15] * 3)))
    assert steady.ratio_noise.spreads["fast"].sigma == 0.0  # the passes' spread is all their pairs' own
    one_pass = load_run(str(_paired_run(tmp_path, "one", [[1.1] * 30, None, None])))  # nothing to measure it by
    case = next(c for c in one_pass.cases if c["case"] == "lenet5-infer-bs1-xla-float32")
    assert not one_pass.ratio_noise.spreads and "fallback constants" in one_pass.ratio_noise.source
    assert case["latency_p50_ms"] < 10  # LeNet-5 at batch 1: a fast step, which drifts more
    drift = 1.96 * FAST_STEP_DRIFT
    assert case["paired"][0]["ci95"] == pytest.approx([1.1 * math.exp(-drift), 1.1 * math.exp(drift)])
    assert one_pass_drift(9.9) == FAST_STEP_DRIFT and one_pass_drift(10.0) == STEP_DRIFT


def test_compare_says_which_paired_ratios_moved_between_runs(tmp_path, capsys):
    base = _paired_run(tmp_path, "base", [[1.0, 1.02] * 15] * 3)
    again = _paired_run(tmp_path, "again", [[1.01, 1.03] * 15] * 3)
    moved = _paired_run(tmp_path, "moved", [[1.3, 1.32] * 15] * 3)
    _, rows = compare_ratios(load_run(str(base)), load_run(str(again)))
    assert [row[:2] for row in rows] == [("lenet5-infer-bs1-xla-float32", "lenet5-infer-bs1-noxla-float32")]
    assert rows[0].agrees
    _, rows = compare_ratios(load_run(str(base)), load_run(str(moved)))
    assert not rows[0].agrees and ratio_rows(rows)[0][-3:] == ("+29.7", band_text(rows[0].band), "moved")
    assert report_main(["--compare", str(base), str(moved), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out.replace("\n  ", " ").splitlines()
    assert out[-2] == ("paired ratios in both runs: 1, 0 (0%) agree within their 95% intervals; moved most: "
                       f"lenet5-infer-bs1-xla-float32 +29.7% (band {band_text(rows[0].band)})")
    assert "| lenet5-infer-bs1-xla-float32 | lenet5-infer-bs1-noxla-float32 | 1.010 | 1.310 | +29.7" in re.sub(
        " +", " ", (tmp_path / "compare.md").read_text())
