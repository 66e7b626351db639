"""Benchmarks: run every bench_*.py beside this file."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path


def main() -> None:
    here = Path(__file__).parent
    sys.path.insert(0, str(here))
    for script in sorted(here.glob("bench_*.py")):
        print(f"== {script.stem}", flush=True)
        runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main()
