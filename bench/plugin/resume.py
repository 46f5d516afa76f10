"""`--resume`: which run to finish, whether it may be finished here, and the options it ran with."""
from __future__ import annotations

import os

import pytest

from ..core import journal
from .options import storage


def resumed_run(config) -> journal.State | None:
    """The journal's state of the run to resume, or None; a bad --resume is one line and exit 4."""
    wanted = config.getoption("cnnbench_resume")
    if wanted is None:
        return None
    folder = storage(config)
    if not wanted:
        path = journal.newest_unfinished(folder)
        if path is None:
            raise pytest.UsageError(f"--resume: no unfinished run under {journal.folder(folder)}/")
    else:
        path = wanted if os.path.exists(wanted) else journal.path_for(folder, wanted)
        if not os.path.exists(path):
            raise pytest.UsageError(f"--resume: no journal {path}")
    try:
        state = journal.State(path)
    except (OSError, ValueError) as err:
        raise pytest.UsageError(f"--resume: {err}") from None
    if state.complete:
        raise pytest.UsageError(f"--resume: {state.run_name} is complete; nothing to resume")
    _check_same_machine_and_commit(config, state)
    return state


def _check_same_machine_and_commit(config, state: journal.State) -> None:
    from pytest_benchmark.utils import get_commit_info

    from ..engines import current as engine
    from ..measure import device

    then = state.header
    machine = (then.get("machine_info") or {}).get("cnnbench", {})
    backend = machine.get("keras_backend", "tensorflow")
    if backend != engine().NAME:  # Keras has started on this run's backend: the user must name the other
        raise pytest.UsageError(f"--resume: {state.run_name} ran on {backend}; resume it with --backend {backend}")
    now = {"device": device.device_name(), "commit": get_commit_info().get("id")}
    was = {"device": machine.get("device"), "commit": (then.get("commit_info") or {}).get("id")}
    differ = [f"{key} {was[key]} then, {now[key]} now" for key in now if was[key] != now[key]]
    if differ and not config.getoption("cnnbench_resume_anyway"):
        raise pytest.UsageError(f"--resume: {state.run_name} ran elsewhere ({'; '.join(differ)}); resuming would "
                                "mix their numbers (--resume-anyway does it)")


def resumed_options(config, state: journal.State) -> dict:
    """The run's own options, its precisions as it kept them, and the budget it has left; its trace options are set
    on `config` as they were."""
    options = dict(state.header["options"])
    options["precision"] = ",".join(state.header["precisions"])
    budget = state.header.get("budget_minutes")
    if budget:
        options["time_budget"] = max(budget - state.elapsed_s / 60, 0.1)
    for name, value in state.header.get("trace_options", {}).items():
        setattr(config.option, f"cnnbench_{name}", value)
    return options
