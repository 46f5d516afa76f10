"""Each model's counts at both input sizes (layers, parameters, depth, FLOPs), kept in facts.json so that listing the
zoo or planning a run builds nothing: building the whole zoo to count it takes 35 s on a 2-core CPU.

`python -m bench.cost.facts` rewrites the file; tests check it against fresh builds.
"""
from __future__ import annotations

import json
import os

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "facts.json")


def load(path: str = PATH) -> dict:
    """name -> input size -> counts; {} when the file is missing or unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}
