"""`edgeclf build --latency-budget`: is the chosen model as good as the best that fits, for a fraction of the search?

For each dataset (scikit-learn digits; a generated folder of photo crops, 10 classes) and each of two latency
budgets, all on this machine:
1. `edgeclf candidates --out DIR` writes the grid (GRID below), and `edgeclf bench DIR/*.tflite --threads 1 --json`
   times it with the runtime: the device.json of this machine (int8 medians at 1 thread).
2. The budgets are the 60th and 90th percentiles of the grid's int8 medians. Choosing among a handful costs at
   least one full training plus the trials, so the cost target is judged where half the grid or more fits.
3. Every candidate that fits the larger budget is built fully (`edgeclf build --model M --alpha A --size S
   --weights none --epochs EPOCHS --int8`, one process each, timed): the ground truth the choice is judged by.
4. `edgeclf build --latency-budget B --device device.json --weights none --epochs EPOCHS` (one process, timed)
   chooses (brief runs of five, full runs of the best one or two, the most accurate at int8 kept); its chosen
   candidate must fit the budget, and its float32 top-1 must be within 1 point of the best fully trained
   candidate's that fits the same budget. Its int8 top-1 (the artifact the budget is for) is compared with the
   best int8 top-1 among them too, and reported: on the photos' 200 validation images one image is half a
   point and an accuracy near 80% has a standard error of about 3 points, so candidates of one family at
   neighbouring widths trade places on it (see the cases' "full").

JSON (last line): choice_accuracy_gap_max (points, worst over datasets and budgets; target <= 1),
choice_int8_accuracy_gap_max (the same for int8 top-1; reported),
choice_cost_ratio (the choosing build's seconds over the seconds of building every fitting candidate fully,
worst case; target <= 0.35), chosen_within_budget (all), and every case. Accuracy is the runtime's top-1 of the
float32 and int8 artifacts on the validation split. Latencies are medians of this machine (CPU features listed by run_all).
--quick: the photo folder only, one input size (32 px, four widths) and fewer epochs.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GRID = {"models": "cnn,mobilenet_v2,mobilenet_v3_small,mobilenet_v3_large,efficientnet_b0", "alphas": "0.5,1.0",
        "sizes": "32,48"}
QUICK_GRID = {"models": "cnn,mobilenet_v2,mobilenet_v3_small,mobilenet_v3_large,efficientnet_b0",
              "alphas": "0.35,0.5,0.75,1.0", "sizes": "32"}
EPOCHS, QUICK_EPOCHS = 10, 6
PERCENTILES = (60, 90)  # of the grid's int8 medians


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def edgeclf(*args: str, env: dict) -> tuple[float, str]:
    """Runs `python -m edgeclf ARGS`; (seconds, stdout)."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "edgeclf", *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"edgeclf {' '.join(args[:6])} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n"
                           f"{proc.stderr[-3000:]}")
    return time.perf_counter() - started, proc.stdout


def device_json(grid: dict, folder: Path, env: dict) -> tuple[Path, dict[str, float]]:
    """The candidates of `grid` written and benched at 1 thread; device.json and {candidate id: int8 median ms}."""
    edgeclf("candidates", "--out", str(folder), "--models", grid["models"], "--alphas", grid["alphas"],
            "--sizes", grid["sizes"], env=env)
    manifest = json.loads((folder / "manifest.json").read_text())
    files = [str(folder / c["files"][v]) for c in manifest["candidates"] for v in ("int8", "float32")]
    _, out = edgeclf("bench", *files, "--threads", "1", "--runs", "50", "--min-time", "0.5", "--json", env=env)
    path = folder.parent / "device.json"
    path.write_text(out)
    medians = {r["name"].split()[3]: r["median_ms"] for r in json.loads(out)["results"] if r["name"].endswith(" int8")}
    return path, medians


def candidate_flags(candidate_id: str) -> list[str]:
    head, size = candidate_id.rsplit("_", 1)
    if head in ("cnn", "efficientnet_b0"):
        return ["--model", head, "--size", size]
    model, alpha = head.rsplit("_", 1)
    return ["--model", model, "--alpha", alpha, "--size", size]


def build_flags(data: str, epochs: int, out: Path) -> list[str]:
    return ["--data", data, "--weights", "none", "--epochs", str(epochs), "--int8", "--out", str(out), "--json"]


def full_builds(data: str, fitting: list[str], epochs: int, out: Path, env: dict) -> dict[str, dict]:
    """Every fitting candidate built fully: {id: {"accuracy", "int8_accuracy", "seconds"}}."""
    results = {}
    for candidate in fitting:
        seconds, stdout = edgeclf("build", *candidate_flags(candidate), *build_flags(data, epochs, out / candidate),
                                  env=env)
        artifacts = json.loads(stdout[stdout.index("{"):])["artifacts"]
        results[candidate] = {"accuracy": round(100 * artifacts["float32"]["accuracy"], 2),
                              "int8_accuracy": round(100 * artifacts["int8"]["accuracy"], 2),
                              "seconds": round(seconds, 1)}
        log(f"  full {candidate}: {results[candidate]}")
    return results


def choice(data: str, budget: float, device: Path, grid: dict, epochs: int, out: Path, env: dict) -> dict:
    flags = ["--latency-budget", f"{budget:.4f}", "--device", str(device)]
    for key in ("models", "alphas", "sizes"):
        flags += [f"--candidate-{key}", grid[key]]
    seconds, stdout = edgeclf("build", *flags, *build_flags(data, epochs, out), env=env)
    summary = json.loads(stdout[stdout.index("{"):])
    report = json.loads((Path(summary["run"]) / "report.json").read_text())
    return {"chosen": report["model_choice"]["chosen"], "seconds": round(seconds, 1),
            "accuracy": round(100 * summary["artifacts"]["float32"]["accuracy"], 2),
            "int8_accuracy": round(100 * summary["artifacts"]["int8"]["accuracy"], 2),
            "trial_seconds": report["model_choice"]["trial_seconds"],
            "tried": {c["candidate"]: c["short_run_accuracy"] for c in report["model_choice"]["candidates"]
                      if c["short_run_accuracy"] is not None},
            "trained_fully": {c["candidate"]: c["full_run_accuracy"] for c in report["model_choice"]["candidates"]
                              if c.get("full_run_accuracy") is not None},
            "trained_fully_int8": {c["candidate"]: c["full_run_int8_accuracy"]
                                   for c in report["model_choice"]["candidates"]
                                   if c.get("full_run_int8_accuracy") is not None}}


def dataset_cases(name: str, data: str, grid: dict, epochs: int, device: Path, medians: dict[str, float], tmp: Path,
                  env: dict) -> dict:
    budgets = [float(np.percentile(list(medians.values()), p)) for p in PERCENTILES]
    fitting_all = sorted(c for c, ms in medians.items() if ms <= max(budgets))
    log(f"{name}: int8 medians {json.dumps({c: round(ms, 3) for c, ms in sorted(medians.items())})}; budgets "
        f"{[round(b, 3) for b in budgets]}; {len(fitting_all)} fit the larger")
    full = full_builds(data, fitting_all, epochs, tmp / name / "full", env)
    cases = {}
    for percentile, budget in zip(PERCENTILES, budgets):
        fitting = [c for c in fitting_all if medians[c] <= budget]
        chosen = choice(data, budget, device, grid, epochs, tmp / name / f"choice-{percentile}", env)
        best = max(fitting, key=lambda c: full[c]["accuracy"])
        best_int8 = max(fitting, key=lambda c: full[c]["int8_accuracy"])
        every = sum(full[c]["seconds"] for c in fitting)
        cases[f"{name}/p{percentile}"] = {
            "budget_ms": round(budget, 3), "fitting": len(fitting), "chosen": chosen["chosen"],
            "chosen_ms": round(medians[chosen["chosen"]], 3), "within_budget": medians[chosen["chosen"]] <= budget,
            "chosen_accuracy": chosen["accuracy"], "best": best, "best_accuracy": full[best]["accuracy"],
            "accuracy_gap": round(full[best]["accuracy"] - chosen["accuracy"], 2),
            "chosen_int8_accuracy": chosen["int8_accuracy"], "best_int8": best_int8,
            "best_int8_accuracy": full[best_int8]["int8_accuracy"],
            "int8_accuracy_gap": round(full[best_int8]["int8_accuracy"] - chosen["int8_accuracy"], 2),
            "choice_seconds": chosen["seconds"], "trial_seconds": chosen["trial_seconds"],
            "every_fitting_seconds": round(every, 1), "cost_ratio": round(chosen["seconds"] / every, 3),
            "tried": chosen["tried"], "trained_fully": chosen["trained_fully"],
            "trained_fully_int8": chosen["trained_fully_int8"], "full": {c: full[c] for c in fitting}}
        log(f"  {name}/p{percentile}: {json.dumps(cases[f'{name}/p{percentile}'])}")
    return cases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="The photo folder only, a smaller grid, fewer epochs.")
    args = parser.parse_args()
    from _photos import HARDER, make_photo_folder

    grid, epochs = (QUICK_GRID, QUICK_EPOCHS) if args.quick else (GRID, EPOCHS)
    cases = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "EDGECLF_CACHE": str(tmp / "cache"), "TF_CPP_MIN_LOG_LEVEL": "2",
               "TF_USE_LEGACY_KERAS": "1"}
        photos = tmp / "photos"
        make_photo_folder(photos / "train", 40, seed=0, names=HARDER)
        make_photo_folder(photos / "val", 20, seed=1, names=HARDER)
        datasets = {"photos": str(photos)} if args.quick else {"digits": "digits", "photos": str(photos)}
        device, medians = device_json(grid, tmp / "candidates", env)
        for name, data in datasets.items():
            cases.update(dataset_cases(name, data, grid, epochs, device, medians, tmp, env))
    print(json.dumps({
        "choice_accuracy_gap_max": max(c["accuracy_gap"] for c in cases.values()),
        "choice_int8_accuracy_gap_max": max(c["int8_accuracy_gap"] for c in cases.values()),
        "choice_cost_ratio": max(c["cost_ratio"] for c in cases.values()),
        "chosen_within_budget": all(c["within_budget"] for c in cases.values()),
        "targets": "choice_accuracy_gap_max <= 1, choice_cost_ratio <= 0.35, chosen_within_budget",
        "grid": grid, "epochs": epochs, "percentiles": list(PERCENTILES),
        "int8_medians_ms": {c: round(ms, 3) for c, ms in sorted(medians.items())}, **cases}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
