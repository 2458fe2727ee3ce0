"""Runs every benchmarks/*.py and rewrites benchmarks/RESULTS.md with the machine, date, command and figures.

Usage: python benchmarks/run_all.py [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from edgeclf.runtime.bench import cpu_name

HERE = Path(__file__).parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    scripts = sorted(p for p in HERE.glob("*.py") if p.name != Path(__file__).name and not p.name.startswith("_"))
    sections, failed = [], 0
    for script in scripts:
        command = [sys.executable, str(script.relative_to(HERE.parent))] + (["--quick"] if args.quick else [])
        print(f"running {' '.join(command)}", file=sys.stderr)
        proc = subprocess.run(command, cwd=HERE.parent, capture_output=True, text=True)
        lines = proc.stdout.strip().splitlines()
        try:
            figures = json.loads(lines[-1]) if proc.returncode == 0 and lines else None
        except json.JSONDecodeError:
            figures = None
        if figures is None:
            failed += 1
            sections.append(f"## {script.name}\n\nFAILED (exit {proc.returncode}):\n\n```\n{proc.stderr[-2000:]}\n```\n")
            continue
        rows = "\n".join(f"| {key} | {value} |" for key, value in figures.items())
        sections.append(f"## {script.name}\n\nCommand: `python {' '.join(command[1:])}`\n\n| figure | value |\n|---|---|\n{rows}\n")
    header = (f"# Benchmark results\n\nWritten by `make bench` (benchmarks/run_all.py); every figure below was "
              f"measured in the run recorded here. Compare timings only as ratios from the same run.\n\n"
              f"- date: {datetime.now().astimezone().isoformat(timespec='seconds')}\n"
              f"- machine: {cpu_name()}, {os.cpu_count()} cores, {platform.platform()}\n"
              f"- python: {platform.python_version()}\n\n")
    (HERE / "RESULTS.md").write_text(header + "\n".join(sections), encoding="utf-8")
    print(f"wrote {HERE / 'RESULTS.md'}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
