"""Runs every benchmarks/*.py and rewrites benchmarks/RESULTS.md with the machine, date, command and figures.

Usage: python benchmarks/run_all.py [--quick] [--only data_pipeline ...]

--only reruns the named scripts and replaces just their sections, each stamped with its own date
and machine; the other sections keep the figures of the run that wrote them.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from edgeclf.runtime.cpu import cpu_info

HERE = Path(__file__).parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="Rerun these scripts (e.g. data_pipeline) only.")
    args = parser.parse_args()
    scripts = sorted(p for p in HERE.glob("*.py") if p.name != Path(__file__).name and not p.name.startswith("_"))
    if args.only:
        wanted = {name.removesuffix(".py") for name in args.only}
        unknown = wanted - {p.stem for p in scripts}
        if unknown:
            parser.error(f"no benchmarks/{', '.join(sorted(unknown))}.py; choose from {', '.join(p.stem for p in scripts)}")
        scripts = [p for p in scripts if p.stem in wanted]
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
            sections.append(f"## {script.name}{' --quick' if args.quick else ''}\n\nFAILED (exit {proc.returncode}):\n\n```\n{proc.stderr[-2000:]}\n```\n")
            continue
        rows = "\n".join(f"| {key} | {_cell(value)} |" for key, value in figures.items())
        stamp = f"Measured: {_now()} on {_machine()}\n\n" if args.only else ""
        title = f"{script.name} --quick" if args.quick else script.name  # a quick run keeps the full run's section
        sections.append(f"## {title}\n\n{stamp}Command: `python {' '.join(command[1:])}`\n\n"
                        f"| figure | value |\n|---|---|\n{rows}\n")
    if args.only:
        _replace_sections(HERE / "RESULTS.md", sections)
        return 1 if failed else 0
    header = (f"# Benchmark results\n\nWritten by `make bench` (benchmarks/run_all.py); every figure below was "
              f"measured in the run recorded here. Compare timings only as ratios from the same run.\n\n"
              f"- date: {_now()}\n"
              f"- machine: {_machine()}\n"
              f"- python: {platform.python_version()}\n\n")
    (HERE / "RESULTS.md").write_text(header + "\n".join(sections), encoding="utf-8")
    print(f"wrote {HERE / 'RESULTS.md'}", file=sys.stderr)
    return 1 if failed else 0


def _cell(value: object) -> str:
    """A table cell: nested figures as compact JSON."""
    return json.dumps(value, separators=(", ", ": ")) if isinstance(value, (dict, list)) else str(value)


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def _machine() -> str:
    """The machine beside every figure, with the CPU features int8 latency depends on."""
    cpu = cpu_info()
    return (f"{cpu.name}, {cpu.cores} cores ({cpu.feature_list()}; int8 dot product: "
            f"{'yes' if cpu.int8_dot_product else 'no'}), {platform.platform()}")


def _replace_sections(results: Path, sections: list[str]) -> None:
    """Swaps the `## name` sections of RESULTS.md for the new ones (appending those not there yet)."""
    text = results.read_text(encoding="utf-8") if results.exists() else "# Benchmark results\n\n"
    head, *old = text.split("\n## ")
    by_name = {part.split("\n", 1)[0]: "## " + part for part in old}
    for section in sections:
        by_name[section.split("\n", 1)[0].removeprefix("## ")] = section
    body = "\n".join(part if part.endswith("\n") else part + "\n" for _, part in sorted(by_name.items()))
    results.write_text(head.rstrip("\n") + "\n\n" + body, encoding="utf-8")
    print(f"updated {', '.join(s.split(chr(10), 1)[0] for s in sections)} in {results}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
