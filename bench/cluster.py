"""`python -m bench.cluster --workers N -- [pytest bench/ options]`: the command of bench.plugin.cluster."""
import sys

from bench.core.cli import run
from bench.plugin.cluster import main

if __name__ == "__main__":
    sys.exit(run("python -m bench.cluster", main))
