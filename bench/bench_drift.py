"""Drift detection quality: driftline's monitor against River's detectors and scipy's exact tests.

Usage: .venv/bin/python bench/bench_drift.py [--seeds 100] [--control-seeds 200]
       [--peer-seeds 20] [--kswin-seeds 2] [--events 1000] [--only SCENARIO,...]

Many seeded synthetic streams (bench/drift_streams.py) with known change points: abrupt
mean shifts of 0.25, 0.5 and 1 standard deviation, a gradual shift, a variance shift, a
category-share shift, a new category, and two controls without drift (stationary, and
seasonal with a daily cycle tested against the same window one day earlier). Base windows
of 1,000 events; five columns (four numeric, one categorical); the change is planted in
one column at window 20.

For each scenario and detector it prints the detection rate, the share detected within 2
base windows, the median delay (base windows, 1 = the first changed window), false alarms
per 1,000 windows (windows with a false alert), and for driftline the share of abrupt
changes localised within 1 base window. River's detectors learn from the values alone
(the reference windows are fed first as warm-up); scipy's tests see the raw windows; the
peers run on fewer seeds than driftline because they cost a Python call per value (KSWIN
~150 us per value: only the changed column, --kswin-seeds seeds).

It also times testing 50 numeric columns for one window from summaries, against scipy's
`ks_2samp` on the raw values of the same 50 columns, and checks the issue's targets.
Results: the table on stdout, JSON in bench/results/drift.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from drift_baselines import Alert, Stream, run_river, run_scipy  # noqa: E402
from drift_driftline import column_test_timing, run_driftline  # noqa: E402
from drift_scoring import Tally  # noqa: E402
from drift_streams import SCENARIOS, Scenario, reference_indices, tested_windows, window_columns  # noqa: E402

REFERENCE_WINDOWS = 20


def make_stream(s: Scenario, seed: int, events: int) -> Stream:
    reference = [window_columns(s, seed, i, events) for i in reference_indices(s, REFERENCE_WINDOWS)]
    windows = [(i, window_columns(s, seed, i, events)) for i in range(s.windows)]
    return Stream(reference, windows, warmup=s.period)


def detectors(s: Scenario) -> dict[str, Callable[[Stream], list[Alert]]]:
    from river import drift

    only = None if s.is_control else [s.column]
    return {
        "driftline": lambda st: run_driftline(st, s),
        "scipy exact": lambda st: run_scipy(st, period=s.period),
        "River ADWIN": lambda st: run_river(st, drift.ADWIN),
        "River PageHinkley": lambda st: run_river(st, drift.PageHinkley),
        "River KSWIN": lambda st: run_river(st, lambda: drift.KSWIN(seed=1), only=only or ["x0"]),
    }


def seeds_for(name: str, s: Scenario, args: argparse.Namespace) -> int:
    if name == "driftline":
        return args.control_seeds if s.is_control else args.seeds
    if name == "River KSWIN":
        return args.kswin_seeds
    return args.peer_seeds


def run(args: argparse.Namespace) -> dict[str, dict[str, Tally]]:
    names = args.only.split(",") if args.only else list(SCENARIOS)
    results: dict[str, dict[str, Tally]] = {}
    started = time.perf_counter()
    for name in names:
        s = SCENARIOS[name]
        found = detectors(s)
        tallies = {d: Tally() for d in found}
        most = max(seeds_for(d, s, args) for d in found)
        tested = len(tested_windows(s))
        for seed in range(most):
            stream = make_stream(s, seed, args.events)
            for d, detect in found.items():
                if seed < seeds_for(d, s, args):
                    tallies[d].add(s, detect(stream), tested)
            print(f"\r  {name}: seed {seed + 1}/{most} ({time.perf_counter() - started:,.0f} s)   ",
                  end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        results[name] = tallies
    return results


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def report(results: dict[str, dict[str, Tally]]) -> list[str]:
    header = (f"{'scenario':<16} {'detector':<18} {'seeds':>5} {'detected':>8} {'<=2 win':>7} "
              f"{'delay':>5} {'FA/1000w':>8} {'loc<=1':>6}")
    lines = [header, "-" * len(header)]
    for name, tallies in results.items():
        s = SCENARIOS[name]
        for d, t in tallies.items():
            detected = "-" if s.is_control else f"{t.rate:.0%}"
            within = "-" if s.is_control else f"{t.within(2):.0%}"
            lines.append(f"{name:<16} {d:<18} {t.seeds:>5} {detected:>8} {within:>7} "
                         f"{_fmt(t.median_delay, '{:.0f}'):>5} {t.false_per_1000:>8.1f} "
                         f"{_fmt(t.localised_within(1), '{:.0%}'):>6}")
    return lines


def targets(results: dict[str, dict[str, Tally]], timing: dict[str, float]) -> list[str]:
    dl = {name: tallies["driftline"] for name, tallies in results.items()}
    lines = []
    controls = [t for name, t in dl.items() if SCENARIOS[name].is_control]
    if controls:
        fa = 1000 * sum(t.false_windows for t in controls) / max(sum(t.windows for t in controls), 1)
        lines.append(f"false alarms on controls: {fa:.2f} per 1,000 windows (target <= 1): "
                     f"{'met' if fa <= 1 else 'NOT met'}")
    if "mean_0.25" in dl:
        share = dl["mean_0.25"].within(2)
        lines.append(f"0.25 sd mean shift detected within 2 windows: {share:.0%} of seeds (target >= 95%): "
                     f"{'met' if share >= 0.95 else 'NOT met'}")
    abrupt = [t for name, t in dl.items() if SCENARIOS[name].abrupt]
    errors = [e for t in abrupt for e in t.localisation_errors]
    if errors:
        share = sum(e <= 1 for e in errors) / len(errors)
        lines.append(f"abrupt changes localised within 1 window: {share:.0%} of {len(errors)} detections "
                     f"(target: all): {'met' if share >= 0.95 else 'NOT met'}")
    ms = timing["driftline_ms"]
    lines.append(f"50 columns tested for one window: {ms:.1f} ms (target <= 20 ms): {'met' if ms <= 20 else 'NOT met'}; "
                 f"scipy ks_2samp on the raw values: {timing['scipy_ms']:.1f} ms "
                 f"(driftline / scipy: {ms / timing['scipy_ms']:.2f}x)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=100, help="seeds per drift scenario (driftline)")
    parser.add_argument("--control-seeds", type=int, default=200, help="seeds per control (driftline)")
    parser.add_argument("--peer-seeds", type=int, default=20, help="seeds per scenario for scipy, ADWIN, PageHinkley")
    parser.add_argument("--kswin-seeds", type=int, default=2)
    parser.add_argument("--events", type=int, default=1000, help="events per base window")
    parser.add_argument("--only", default=None, help="comma-separated scenario names")
    args = parser.parse_args()
    timing = column_test_timing(columns=50, events=args.events)
    results = run(args)
    lines = report(results) + [""] + targets(results, timing)
    print("\n".join(lines))
    out = HERE / "results" / "drift.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({
        "args": vars(args), "timing": timing,
        "results": {name: {d: {"seeds": t.seeds, "detected": t.detected, "within_2": t.within(2),
                               "median_delay": t.median_delay, "false_per_1000": t.false_per_1000,
                               "localised_within_1": t.localised_within(1)}
                           for d, t in tallies.items()} for name, tallies in results.items()},
    }, indent=2))
    print(f"\nresults written to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
