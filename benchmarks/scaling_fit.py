"""Time a scaling-law fit (Hoffmann's 4,500-start grid) plus bootstrap refits on synthetic points.

    python benchmarks/scaling_fit.py [--points 500] [--bootstrap 100] [--json out.json]

Prints one table row per stage and writes JSON. The points come from a known Chinchilla-style
law with 1% log-normal noise, so the row also shows whether the 95% intervals cover the truth.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import date
from pathlib import Path

import numpy as np

from scaling_analysis.fit import bootstrap, extrapolation_check, fit_law, leave_one_out
from scaling_analysis.laws import ChinchillaLaw
from scaling_analysis.points import Points

TRUTH = ChinchillaLaw(E=1.7, A=400.0, B=1500.0, alpha=0.34, beta=0.30)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--points", type=int, default=500)
    p.add_argument("--bootstrap", type=int, default=100)
    p.add_argument("--json", type=Path, default=None, help="write the timings here")
    args = p.parse_args()
    rng = np.random.default_rng(0)
    n = np.exp(rng.uniform(np.log(5e7), np.log(5e9), args.points))
    d = np.exp(rng.uniform(np.log(1e9), np.log(5e11), args.points))
    loss = TRUTH.loss(n, d) * np.exp(rng.normal(0, 0.01, n.size))
    points = Points(n, d, loss, tuple(f"n{i % 10}" for i in range(args.points)))
    start = time.perf_counter()
    fit = fit_law(points)
    t_fit = time.perf_counter()
    boot = bootstrap(points, fit, args.bootstrap)
    t_boot = time.perf_counter()
    leave_one_out(points, fit, by="group")
    extrapolation_check(points, fit)
    t_checks = time.perf_counter()
    covered = [
        name
        for name in boot.names
        if boot.interval(name)[0] <= getattr(TRUTH, name) <= boot.interval(name)[1]
    ]
    result = {
        "date": date.today().isoformat(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "points": args.points,
        "grid_starts": fit.n_starts,
        "bootstrap_resamples": args.bootstrap,
        "fit_seconds": round(t_fit - start, 2),
        "bootstrap_seconds": round(t_boot - t_fit, 2),
        "fit_plus_bootstrap_seconds": round(t_boot - start, 2),
        "checks_seconds": round(t_checks - t_boot, 2),
        "truth_covered_by_95pct": covered,
    }
    print("| points | starts | fit s | bootstrap s | fit+bootstrap s | checks s | covered |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    print(
        f"| {args.points} | {fit.n_starts} | {result['fit_seconds']} | "
        f"{result['bootstrap_seconds']} | {result['fit_plus_bootstrap_seconds']} | "
        f"{result['checks_seconds']} | {','.join(covered)} |"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
