"""`python -m bench.describe NAME ...`: the command of bench.cost.describe."""
import sys

from bench.core.cli import run
from bench.cost.describe import main

if __name__ == "__main__":
    sys.exit(run("python -m bench.describe", main))
