"""`python -m bench.export [NAME ...]`: the command of bench.engines.runtimes.ahead."""
import sys

from bench.core.cli import run
from bench.engines.runtimes.ahead import main

if __name__ == "__main__":
    sys.exit(run("python -m bench.export", main))
