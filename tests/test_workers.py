"""Worker processes: which comparisons a spread worker times again, and the pytest child it runs them in."""
from types import SimpleNamespace

from bench.plugin import workers


def _measured(test_id, median_s, seconds, twins=(), model="m", xla=False, pass_index=1):
    case = SimpleNamespace(test_id=test_id, model=model, runtime="keras", precision="float32", xla=xla,
                           pass_index=pass_index)
    return SimpleNamespace(case=case, twin_ids=tuple(twins), median_s=median_s, seconds=seconds)


def _run():
    entries = [
        _measured("a-bs1-noxla", 0.001, 2.0, model="a"),
        _measured("a-bs1-xla", 0.0008, 3.0, ["a-bs1-noxla"], model="a", xla=True),  # fast, 5 s with its twin
        _measured("b-bs8-noxla", 0.030, 4.0, model="b"),
        _measured("b-bs8-xla", 0.025, 4.0, ["b-bs8-noxla"], model="b", xla=True),  # slow, 8 s
        _measured("c-bs1-noxla", 0.002, 30.0, model="c"),
        _measured("c-bs1-xla", 0.002, 30.0, ["c-bs1-noxla"], model="c", xla=True),  # fast, but 60 s
        _measured("a-bs1-xla-pass2", 0.0008, 3.0, ["a-bs1-noxla"], model="a", xla=True, pass_index=2),
    ]
    return {m.case.test_id: m for m in entries}


def test_the_sample_takes_both_step_classes_cheapest_first_within_the_seconds_twins_first():
    measured, cost = _run(), workers.WORKER_COST  # a worker builds and traces anew: its cases cost more
    assert workers.sample(measured, 13.0 * cost) == ["a-bs1-noxla", "a-bs1-xla", "b-bs8-noxla", "b-bs8-xla"]
    assert workers.sample(measured, 6.0 * cost) == ["a-bs1-noxla", "a-bs1-xla"]  # the slow one no longer fits
    assert workers.sample(measured, 1.0) == []
    assert "c-bs1-xla" in workers.sample(measured, 100.0 * cost)


def test_the_sample_takes_each_kind_of_comparison_in_turn():
    measured = _run()
    runtime = _measured("d-bs1-litert", 0.0005, 4.0, ["d-bs1-noxla"], model="d")
    runtime.case.runtime = "litert"
    measured |= {"d-bs1-noxla": _measured("d-bs1-noxla", 0.002, 1.0, model="d"), "d-bs1-litert": runtime,
                 "e-bs1-noxla": _measured("e-bs1-noxla", 0.001, 1.0, model="e"),
                 "e-bs1-xla": _measured("e-bs1-xla", 0.001, 2.0, ["e-bs1-noxla"], model="e", xla=True)}
    # by cost alone: e (3 s), a (5), d (5), then b (8) would not fit; in turn: e, d and b, each kind and class once
    chosen = workers.sample(measured, 18.0 * workers.WORKER_COST)
    assert chosen == ["b-bs8-noxla", "b-bs8-xla", "d-bs1-noxla", "d-bs1-litert", "e-bs1-noxla", "e-bs1-xla"]


def test_a_worker_is_a_pytest_child_of_the_run_s_options_with_no_budget_traces_or_workers(tmp_path):
    options = {"models": "lenet5", "precision": None, "case_seconds": 1.5, "passes": 3, "time_budget": 20.0}
    argv = workers.worker_argv(options, ["lenet5-infer-bs1-xla-float32"], str(tmp_path / "w.json"),
                               str(tmp_path), passes=1)
    assert argv[1:3] == ["-m", "pytest"] and argv[3].endswith("test_cases.py::test_case[lenet5-infer-bs1-xla-float32]")
    flags = dict(zip(argv[4::2], argv[5::2]))
    assert flags["--models"] == "lenet5" and flags["--case-seconds"] == "1.5" and flags["--passes"] == "1"
    assert flags["--time-budget"] == "0" and flags["--spread-workers"] == "0" and flags["--processes"] == "1"
    assert "--precision" not in argv and "--no-trace" in argv and "--benchmark-json" in argv


def test_a_worker_that_saves_nothing_is_said_and_left_out(tmp_path, monkeypatch):
    said = []
    monkeypatch.setattr(workers, "TEST_FILE", str(tmp_path / "missing_test_cases.py"))
    found = workers.run_workers({}, ["x"], 1, {}, 1.0, said.append, 2)
    assert found == [] and said[0] == "worker process 1 of 1: 1 cases again" and "saved nothing" in said[1]
