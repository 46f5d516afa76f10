"""The run's journal: one JSON line per finished or skipped case, appended and flushed as it happens.

pytest-benchmark writes its JSON only when a session ends cleanly, so a run killed near its end (a scheduler's time
limit, the OOM killer, a crash inside TensorFlow) lost everything it had measured. The journal is never rewritten:
a header line first (the run, its machine, commit and planned cases), then a line per case, then an end line. The
report reads a run that never saved its JSON from its journal; `--resume` measures what a run has not finished.
No TensorFlow here: the report reads journals too.
"""
from __future__ import annotations

import json
import os
import sys

FOLDER = "journal"  # under pytest-benchmark's storage


def folder(storage: str) -> str:
    return os.path.join(storage, FOLDER)


def path_for(storage: str, run_name: str) -> str:
    return os.path.join(folder(storage), f"{run_name}.jsonl")


class Journal:
    """Appends records; each is on disk (flushed and synced) before `write` returns."""

    def __init__(self, path: str):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self.path = path
        self._file = open(path, "a", encoding="utf-8")
        if self._file.tell() and not _ends_with_newline(path):  # a line cut off by a kill: start a fresh one
            self._file.write("\n")

    def write(self, kind: str, **record) -> None:
        self._file.write(json.dumps({"kind": kind, **record}, default=str) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def _ends_with_newline(path: str) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def read(path: str) -> list[dict]:
    """The journal's records; a last line cut off mid-write (the run was killed) is left out with a warning."""
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().split("\n")
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            where = "its last line" if number >= len(lines) - 1 else f"line {number}"
            print(f"warning: {path}: {where} is cut off or not JSON; left out", file=sys.stderr)
    return records


def finished_ids(benchmarks, skipped) -> tuple[set, set]:
    """(test ids measured, case ids skipped with a reason: a skipped case's later passes go with it)."""
    return {b.get("param") for b in benchmarks}, {s["case"] for s in skipped}


def count_finished(planned, benchmarks, skipped) -> int:
    """How many of the planned (test id, case id) are finished."""
    measured, skipped_cases = finished_ids(benchmarks, skipped)
    return sum(test_id in measured or case_id in skipped_cases for test_id, case_id in planned)


class State:
    """What a journal says of its run."""

    def __init__(self, path: str):
        self.path = path
        self.records = read(path)
        header = next((r for r in self.records if r.get("kind") == "header"), None)
        if header is None:
            raise ValueError(f"{path}: no header line, not a cnnbench journal")
        self.header = header
        self.benchmarks = [r["benchmark"] for r in self.records if r.get("kind") == "case"]
        self.skipped = [r["skip"] for r in self.records if r.get("kind") == "skip"]
        self.planned = [tuple(p) for p in header.get("planned") or []]  # (test id, case id)
        self._finished = finished_ids(self.benchmarks, self.skipped)
        ends = [r for r in self.records if r.get("kind") == "end"]
        self.complete = bool(ends) and ends[-1].get("complete", False)
        self.stop_reason = ends[-1].get("reason") if ends else "killed: the journal has no end line"

    @property
    def run_name(self) -> str:
        return self.header["run_name"]

    def is_finished(self, test_id: str, case_id: str) -> bool:
        measured, skipped_cases = self._finished
        return test_id in measured or case_id in skipped_cases

    def finished_count(self) -> int:
        return count_finished(self.planned, self.benchmarks, self.skipped)

    @property
    def elapsed_s(self) -> float:
        """Session time the run has spent, by its last record."""
        return max((r.get("elapsed_s", 0.0) for r in self.records), default=0.0)

    def incomplete(self) -> dict | None:
        if self.complete:
            return None
        return {"reason": self.stop_reason, "finished": self.finished_count(), "planned": len(self.planned)}

    def as_saved_run(self) -> dict:
        """The run as pytest-benchmark would have saved it, for the report."""
        header = self.header
        return {"machine_info": header.get("machine_info") or {}, "commit_info": header.get("commit_info") or {},
                "datetime": header.get("datetime"), "benchmarks": self.benchmarks,
                "cnnbench": {"run_name": self.run_name, "skipped": self.skipped, "journal": self.path,
                             "incomplete": self.incomplete()}}


def journals(storage: str) -> list[str]:
    base = folder(storage)
    if not os.path.isdir(base):
        return []
    return sorted((os.path.join(base, name) for name in os.listdir(base) if name.endswith(".jsonl")),
                  key=os.path.getmtime)


def newest_unfinished(storage: str) -> str | None:
    for path in reversed(journals(storage)):
        try:
            if not State(path).complete:
                return path
        except (OSError, ValueError):
            continue
    return None
