"""``trilm fit`` (also ``python -m scaling_analysis``): fit L(N, D) to runs or a CSV and write
coefficients.json, report.md and the figures to ``--out``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from scaling_analysis.fit import (
    FitConfig,
    bootstrap,
    extrapolation_check,
    fit_law,
    leave_one_out,
)
from scaling_analysis.laws import FORMS
from scaling_analysis.points import Points, ScalingDataError, from_csv, from_runs


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``trilm fit``."""
    p.add_argument(
        "--runs",
        nargs="*",
        type=Path,
        default=[],
        help="run directories written by trilm train (metrics.jsonl + run_info.json), or sweep "
        "directories holding them",
    )
    p.add_argument("--csv", type=Path, help="a CSV of points instead of (or besides) runs")
    p.add_argument("--csv-n", default="N", help="CSV column of parameters (default N)")
    p.add_argument("--csv-d", default="D", help="CSV column of tokens (default D)")
    p.add_argument("--csv-flops", help="CSV column of training FLOPs: D = C / 6N instead")
    p.add_argument("--csv-loss", default="loss", help="CSV column of the loss (default loss)")
    p.add_argument("--csv-unique", help="CSV column of unique tokens (for --data-constrained)")
    p.add_argument(
        "--n-kind",
        choices=["total", "non_embedding"],
        default="total",
        help="N counts all parameters or only non-embedding ones (runs only; default total)",
    )
    p.add_argument(
        "--linear",
        choices=["each", "ternary", "float", "all"],
        default="each",
        help="which runs to fit (by run_info.json): each = one fit per family, TriLM and "
        "FloatLM, in OUT/ternary and OUT/float with a comparison in OUT/report.md, when the runs "
        "hold both (default); ternary or float = that family only; all = one fit of every run",
    )
    p.add_argument(
        "--law",
        choices=sorted(FORMS),
        default="chinchilla",
        help="chinchilla: E + A/N^alpha + B/D^beta (default); kaplan: Kaplan et al. 2020 eq. 1.5",
    )
    p.add_argument(
        "--data-constrained",
        action="store_true",
        help="also fit Muennighoff et al.'s R_D*, R_N* for repeated data (needs unique tokens)",
    )
    p.add_argument(
        "--drop-highest",
        type=int,
        default=0,
        help="leave out the K highest-loss points (Besiroglu et al. drop 5 of Chinchilla's)",
    )
    p.add_argument(
        "--bootstrap",
        type=int,
        default=100,
        help="bootstrap resamples for the 95%% intervals (default 100; 0 = none)",
    )
    p.add_argument(
        "--leave-out",
        choices=["n", "group", "point"],
        default="n",
        help="held-out sets of the leave-one-out check: each model size (default), each run, "
        "or each point",
    )
    p.add_argument("--target-n", type=float, help="predict the loss at this N ...")
    p.add_argument("--target-d", type=float, help="... and this D (with an interval)")
    p.add_argument(
        "--budget",
        type=float,
        action="append",
        default=[],
        help="compute budget C in FLOPs for the optimal N and D (repeatable; default: the "
        "largest budget of the points and 10x, 100x it)",
    )
    p.add_argument(
        "--formats",
        default="png",
        help="figure formats, comma separated (default png; e.g. png,svg)",
    )
    p.add_argument("--out", type=Path, required=True, help="report directory")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")


def _expand_sweeps(paths: list[Path]) -> list[Path]:
    """A directory without run_info.json but with runs inside (a sweep) stands for its runs."""
    out = []
    for path in paths:
        inner = sorted(p.parent for p in path.glob("*/run_info.json"))
        out += inner if not (path / "run_info.json").exists() and inner else [path]
    return out


def _linear_of(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / "run_info.json").read_text()).get("linear")
    except (OSError, json.JSONDecodeError):
        return None  # from_runs names the problem


def load_points(args: argparse.Namespace) -> Points:
    """The points the options select, validated."""
    parts = []
    if args.runs:
        runs = [
            r for r in _expand_sweeps(args.runs) if args.linear in ("all", "each", _linear_of(r))
        ]
        if not runs:
            raise ScalingDataError(
                f"--runs: none of {[str(r) for r in args.runs]} holds a run with "
                f"--linear={args.linear}"
            )
        parts.append(from_runs(runs, args.n_kind))
    if args.csv:
        parts.append(
            from_csv(
                args.csv,
                args.csv_n,
                None if args.csv_flops else args.csv_d,
                args.csv_loss,
                args.csv_flops,
                args.csv_unique,
            )
        )
    if not parts:
        raise ScalingDataError("give --runs DIR [DIR ...] or --csv FILE")
    points = Points.concat(parts)
    if args.drop_highest:
        if args.drop_highest >= len(points):
            raise ScalingDataError(f"--drop-highest={args.drop_highest}: only {len(points)} points")
        keep = np.zeros(len(points), bool)
        keep[np.argsort(points.loss)[: len(points) - args.drop_highest]] = True
        points = points.subset(keep)
    return points


def _families(args: argparse.Namespace) -> list[str]:
    """The families ``--linear each`` fits separately: both when the runs hold both."""
    if args.linear != "each" or not args.runs or args.csv:
        return []
    found = {_linear_of(r) for r in _expand_sweeps(args.runs)}
    return sorted(found) if found == {"ternary", "float"} else []


def run(args: argparse.Namespace) -> int:
    """Fit, check, plot and report; raises ScalingDataError (one line) on bad input.

    With ``--linear each`` and runs of both families, TriLMs and FloatLMs get a fit each (in
    ``OUT/ternary`` and ``OUT/float``): one law through both would average two different
    curves, and their exponents are the comparison the Spectra 1.1 paper draws."""
    if (args.target_n is None) != (args.target_d is None):
        raise ScalingDataError("--target-n and --target-d go together: give both or neither")
    families = _families(args)
    if not families:
        _fit_and_report(args, args.out)
        return 0
    results = {}
    for family in families:
        sub = argparse.Namespace(**{**vars(args), "linear": family})
        results[family] = _fit_and_report(sub, args.out / family)
    summary = {"law": args.law, "families": results}
    (args.out / "coefficients.json").write_text(json.dumps(summary, indent=2) + "\n")
    (args.out / "report.md").write_text(_comparison_report(results))
    print(f"report comparing {' and '.join(families)} in {args.out}")
    return 0


def _comparison_report(results: dict[str, dict]) -> str:
    names = {"ternary": "TriLM", "float": "FloatLM"}
    families = list(results)
    coefficient_names = list(results[families[0]]["coefficients"])
    lines = [
        "# Scaling-law fits: TriLM and FloatLM",
        "",
        "One fit per family (details, figures: "
        + ", ".join(f"[{names[f]}]({f}/report.md)" for f in families)
        + "). 95% bootstrap intervals in brackets.",
        "",
        "| coefficient | " + " | ".join(names[f] for f in families) + " |",
        "| --- | " + " | ".join("---" for _ in families) + " |",
    ]
    for name in coefficient_names:
        cells = []
        for f in families:
            value = results[f]["coefficients"][name]
            interval = results[f].get("intervals_95", {}).get(name)
            bounds = f" [{interval[0]:.4g}, {interval[1]:.4g}]" if interval else ""
            cells.append(f"{value:.4g}{bounds}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| points | " + " | ".join(str(results[f]["n_points"]) for f in families) + " |")
    if all("beta" in results[f]["coefficients"] for f in families):
        lines += [
            "",
            "Spectra 1.1 (arXiv 2506.23025) finds beta well above alpha for TriLMs (more data "
            "pays more) and the two closer for FloatLMs. Here: "
            + "; ".join(
                f"{names[f]} beta - alpha = "
                f"{results[f]['coefficients']['beta'] - results[f]['coefficients']['alpha']:.3f}"
                for f in families
            )
            + ".",
        ]
    return "\n".join(lines) + "\n"


def _fit_and_report(args: argparse.Namespace, out: Path) -> dict:
    """One fit of the points ``args`` selects, its checks, figures and report in ``out``."""
    from scaling_analysis import plots
    from scaling_analysis.isoflop import isoflop

    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    start = time.perf_counter()
    points = load_points(args)
    fit = fit_law(points, FitConfig(form=args.law))
    law = fit.law
    result: dict = {
        "law": args.law,
        "n_kind": args.n_kind,
        "n_points": len(points),
        "coefficients": law.as_dict(),
        "huber_objective": fit.objective,
        "n_starts": fit.n_starts,
    }
    boot = None
    if args.bootstrap:
        boot = bootstrap(points, fit, args.bootstrap, args.seed)
        result["bootstrap_resamples"] = args.bootstrap
        result["intervals_95"] = {name: boot.interval(name) for name in boot.names}
    if args.target_n is not None:
        target = {
            "n": args.target_n,
            "d": args.target_d,
            "loss": float(law.loss(args.target_n, args.target_d)),
        }
        if boot:
            target["interval_95"] = boot.predicted_loss(args.target_n, args.target_d)
        result["target"] = target
    largest = float((6 * points.n * points.d).max())
    budgets = args.budget or [largest, 10 * largest, 100 * largest]
    n_opt, d_opt = law.compute_optimal(budgets)
    result["compute_optimal"] = [
        {"flops": c, "n_opt": float(n), "d_opt": float(d), "tokens_per_param": float(d / n)}
        for c, n, d in zip(budgets, n_opt, d_opt, strict=True)
    ]
    result["leave_one_out"] = {"by": args.leave_out, **_loo_summary(points, fit, args.leave_out)}
    result["fit_small_predict_largest"] = extrapolation_check(points, fit)
    if args.data_constrained:
        result["data_constrained"] = _data_constrained(points, fit)
    out.mkdir(parents=True, exist_ok=True)
    figures = plots.loss_vs_tokens(points, law, out / "loss_vs_tokens", formats)
    figures += plots.iso_loss_contours(points, law, out / "iso_loss", formats)
    figures += plots.residuals(points, law, out / "residuals", formats)
    try:
        iso = isoflop(points)
        result["isoflop"] = {
            "exponent_n": iso.exponent_n,
            "exponent_d": iso.exponent_d,
            "budgets": iso.budgets.tolist(),
            "n_opt": iso.n_opt.tolist(),
        }
        figures += plots.isoflop_parabolas(iso, out / "isoflop", formats)
    except ScalingDataError as err:
        result["isoflop"] = {"skipped": str(err)}
    result["seconds"] = round(time.perf_counter() - start, 2)
    (out / "coefficients.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "report.md").write_text(_report(result, [f for f in figures if f.suffix == ".png"]))
    coefs = " ".join(f"{k}={v:.4g}" for k, v in law.as_dict().items())
    family = "" if args.linear in ("all", "each") else f"{args.linear} "
    print(f"fit {len(points)} {family}points: {coefs}; report in {out}")
    return result


def _loo_summary(points: Points, fit, by: str) -> dict:
    errors = leave_one_out(points, fit, by)
    if not errors:
        return {"rms_log_error": {}}
    worst = max(errors, key=errors.get)
    return {
        "rms_log_error": errors,
        "mean": float(np.mean(list(errors.values()))),
        "worst": worst,
    }


def _data_constrained(points: Points, fit) -> dict:
    from scaling_analysis.data_constrained import fit_data_constrained

    if fit.config.form != "chinchilla":
        raise ScalingDataError("--data-constrained builds on --law chinchilla")
    if points.unique_tokens is None:
        raise ScalingDataError(
            "--data-constrained: give the unique tokens (run_info.json 'unique_tokens' or "
            "--csv-unique COLUMN)"
        )
    single_epoch = points.subset(points.d <= points.unique_tokens)
    base = fit_law(single_epoch).law if len(single_epoch) > 5 else fit.law
    dc = fit_data_constrained(points, base)
    return {
        "base_fitted_on_single_epoch_points": len(single_epoch) > 5,
        "coefficients": dc.law.as_dict(),
        "n_repeated_points": dc.n_repeated,
    }


def _report(result: dict, figures: list[Path]) -> str:
    names = list(result["coefficients"])
    lines = [
        "# Scaling-law fit",
        "",
        f"Form `{result['law']}` fitted to {result['n_points']} points (N = {result['n_kind']} "
        f"parameters): Huber loss (delta 1e-3) on log L, L-BFGS from {result['n_starts']} "
        "starts (Hoffmann et al. 2022, approach 3).",
        "",
        "| coefficient | value | 95% bootstrap interval |",
        "| --- | ---: | --- |",
    ]
    for name in names:
        interval = result.get("intervals_95", {}).get(name)
        text = f"[{interval[0]:.4g}, {interval[1]:.4g}]" if interval else "-"
        lines.append(f"| {name} | {result['coefficients'][name]:.4g} | {text} |")
    if "bootstrap_resamples" in result:
        lines += ["", f"Intervals: percentiles of {result['bootstrap_resamples']} resamples."]
    if "target" in result:
        t = result["target"]
        interval = t.get("interval_95")
        lines += [
            "",
            f"Predicted loss at N = {t['n']:.3g}, D = {t['d']:.3g}: {t['loss']:.4f}"
            + (f" (95%: {interval[0]:.4f} to {interval[1]:.4f})." if interval else "."),
        ]
    lines += [
        "",
        "## Compute-optimal allocation (C = 6ND)",
        "",
        "| C (FLOPs) | N_opt | D_opt | tokens per parameter |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for row in result["compute_optimal"]:
        lines.append(
            f"| {row['flops']:.3g} | {row['n_opt']:.3g} | {row['d_opt']:.3g} | "
            f"{row['tokens_per_param']:.3g} |"
        )
    lines += ["", "## How well it predicts held-out points", ""]
    loo = result["leave_one_out"]
    if loo["rms_log_error"]:
        lines.append(
            f"Leave one {'model size' if loo['by'] == 'n' else loo['by']} out, refit, predict "
            f"it: RMS error of log L mean {loo['mean']:.4f}, worst "
            f"{loo['rms_log_error'][loo['worst']]:.4f} ({loo['worst']})."
        )
    else:
        lines.append("Leave-one-out: no held-out set leaves enough points to refit.")
    ext = result["fit_small_predict_largest"]
    if ext:
        lines.append(
            f"Fit without the largest N ({ext['held_out_n']:.3g}), predict its "
            f"{ext['n_held_out_points']} points: RMS log error {ext['rms_log_error']:.4f}, "
            f"mean relative error {ext['mean_relative_error']:.2%}."
        )
    iso = result["isoflop"]
    lines += ["", "## IsoFLOP profiles (approach 2)", ""]
    if "skipped" in iso:
        lines.append(f"Skipped: {iso['skipped']}.")
    else:
        lines.append(
            f"{len(iso['budgets'])} budgets: N_opt ~ C^{iso['exponent_n']:.3f}, "
            f"D_opt ~ C^{iso['exponent_d']:.3f}."
        )
    if "data_constrained" in result:
        dc = result["data_constrained"]["coefficients"]
        lines += [
            "",
            "## Data-constrained (Muennighoff et al. 2023)",
            "",
            f"R_D* = {dc['R_D_star']:.3g}, R_N* = {dc['R_N_star']:.3g} "
            f"({result['data_constrained']['n_repeated_points']} points repeat data).",
        ]
    lines += ["", "## Figures", ""] + [f"![{f.stem}]({f.name})" for f in figures]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m scaling_analysis``: the same options; bad input exits 2 with one line."""
    parser = argparse.ArgumentParser(prog="python -m scaling_analysis", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except ScalingDataError as err:
        print(f"fit: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
