"""Summarisation throughput and size: the mergeable summaries against plain numpy.

Usage: .venv/bin/python bench/bench_summaries.py [--values 4000000] [--repeats 5] [--quick]

One process, one thread (BLAS threads pinned to 1 before numpy loads, so every figure is
per core). Each figure is the median of --repeats runs. It prints:

- numeric summary, batched numpy updates (`NumericSummary.update`) at several batch sizes,
  for a continuous column and a low-cardinality one (prices rounded to cents), in values/s;
- the per-value path (`NumericSummary.add`), values/s;
- the same statistics with plain numpy on the raw window (count, mean, var, skew, kurt,
  min, max, 7 exact quantiles, np.unique distinct), values/s, and the ratio;
- an hour from 60 one-minute summaries (merge) against numpy on the raw hour;
- where a 1M-value batch update spends its time (moments, sum/min/max, KLL, HLL feeder);
- serialized sizes (bytes and JSON) at the default sketch sizes;
- categorical summaries (batch, per value, numpy np.unique), window accumulation from
  event dicts, and the reservoir samplers, per item.

Targets (issue 3): >= 10M numeric values/s per core from batches, a numeric summary
under 8 KB. Results also go to bench/results/summaries.json.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # per-core figures: numpy's BLAS (np.dot) must not fan out

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import orjson  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing

from datasketches import kll_doubles_sketch  # noqa: E402

from features.summaries.categorical import CategoricalSummary  # noqa: E402
from features.summaries.hll import HLL_TYPE, HllBatchFeeder  # noqa: E402
from features.summaries.moments import merge_moments, moments_of  # noqa: E402
from features.summaries.numeric import NumericSummary, merge  # noqa: E402
from features.samples.reservoirs import SkipReservoir, UniformReservoir, WeightedReservoir  # noqa: E402
from features.summaries.window import WindowAccumulator  # noqa: E402

QUANTILES = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99]
TARGET_RATE = 10e6
TARGET_BYTES = 8 * 1024


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of `repeats` calls (one thread)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def numpy_statistics(x: np.ndarray) -> tuple:
    """What a summary answers, computed exactly from the raw values with numpy."""
    n = x.size
    mean = x.mean()
    d = x - mean
    d2 = d * d
    m2 = d2.sum()
    var = m2 / n
    skew = (d2 * d).sum() / n / var**1.5
    kurt = (d2 * d2).sum() / n / var**2 - 3.0
    return (n, mean, var, skew, kurt, x.min(), x.max(), np.quantile(x, QUANTILES),
            np.unique(x).size)


def summarise(batches: list[np.ndarray]) -> NumericSummary:
    s = NumericSummary()
    for b in batches:
        s.update(b)
    return s


def add_each(values: list[float]) -> NumericSummary:
    s = NumericSummary()
    for v in values:
        s.add(v)
    return s


def bench_numeric(total: int, repeats: int, rows: list, results: dict) -> None:
    rng = np.random.default_rng(42)
    columns = {"continuous": rng.normal(70.0, 5.0, total),
               "cents": np.round(rng.gamma(2.0, 8.0, total), 2)}
    results["numeric_batch"] = {}
    for name, x in columns.items():
        for size in (1_000, 10_000, 100_000, 1_000_000):
            batches = np.array_split(x, max(1, total // size))
            rate = total / timed(lambda: summarise(batches), repeats)
            results["numeric_batch"][f"{name}/{size}"] = rate
            rows.append((f"numeric batch update ({name}, batch {size:,})", f"{rate / 1e6:.1f}M",
                         "values/s", "target >= 10M" if size >= 100_000 else ""))
    per_value_n = min(total, 200_000)
    values = columns["continuous"][:per_value_n].tolist()
    rate = per_value_n / timed(lambda: add_each(values), max(1, repeats // 2))
    results["numeric_per_value"] = rate
    rows.append(("numeric per value (NumericSummary.add)", f"{rate / 1e6:.2f}M", "values/s", ""))

    window = columns["continuous"][:1_000_000]
    ours = window.size / timed(lambda: summarise([window]), repeats)
    raw = window.size / timed(lambda: numpy_statistics(window), repeats)
    results["numpy_raw_window"] = raw
    results["batch_vs_numpy"] = ours / raw
    rows.append(("numpy on the raw window (1M: moments, min/max, 7 quantiles, unique)",
                 f"{raw / 1e6:.1f}M", "values/s", ""))
    rows.append(("  summary batch update / numpy on the raw window", f"{ours / raw:.2f}x",
                 "speed", "> 1: the summary is faster"))

    raw_hour = columns["continuous"]
    minutes = [summarise([c]) for c in np.array_split(raw_hour, 60)]
    merge_s = timed(lambda: _merge_all(minutes), repeats)
    numpy_s = timed(lambda: numpy_statistics(raw_hour), max(1, repeats // 2))
    results["hour_merge_s"], results["hour_numpy_s"] = merge_s, numpy_s
    rows.append(("hour from 60 minute summaries (merge)", f"{merge_s * 1e3:.1f}", "ms",
                 f"numpy on the raw hour ({raw_hour.size:,} values): {numpy_s * 1e3:.0f} ms, "
                 f"{numpy_s / merge_s:.0f}x slower"))

    # Where the batch path spends its time, on the same 1M window.
    parts = {
        "moments (two-pass numpy + merge)": lambda: merge_moments(moments_of(window),
                                                                  moments_of(window[:10])),
        "sum, min, max": lambda: (window.sum(), window.min(), window.max()),
        "KLL update (array)": lambda: kll_doubles_sketch(200).update(window),
        "HLL feeder (numpy hash + filtered updates)": lambda: _feed_fresh(window),
    }
    results["breakdown_ms"] = {}
    for label, fn in parts.items():
        ms = timed(fn, repeats) * 1e3
        results["breakdown_ms"][label] = ms
        rows.append((f"  1M batch: {label}", f"{ms:.1f}", "ms", ""))

    sizes = {}
    for n in sorted({1_000, 100_000, 1_000_000, total}):
        s = summarise([columns["continuous"][:n]])
        sizes[n] = (len(s.to_bytes()), len(orjson.dumps(s.to_dict())))
        rows.append((f"numeric summary size after {n:,} values", f"{sizes[n][0]:,}", "bytes",
                     f"JSON {sizes[n][1]:,} bytes; target < 8 KB"))
    results["numeric_bytes"] = {str(n): b for n, (b, _) in sizes.items()}
    results["numeric_json_bytes"] = {str(n): j for n, (_, j) in sizes.items()}


def _merge_all(summaries: list[NumericSummary]) -> NumericSummary:
    out = summaries[0]
    for s in summaries[1:]:
        out = merge(out, s)
    return out


def _feed_fresh(x: np.ndarray) -> None:
    from datasketches import hll_sketch
    HllBatchFeeder(12).feed(hll_sketch(12, HLL_TYPE), x)


def bench_categorical(total: int, repeats: int, rows: list, results: dict) -> None:
    rng = np.random.default_rng(7)
    n = min(total, 1_000_000)
    for label, values in (("3 categories", np.array(["card", "cash", "wallet"])[rng.integers(0, 3, n)]),
                          ("10k categories", np.char.add("area-", rng.integers(0, 10_000, n).astype(str)))):
        as_list = values.tolist()

        def batch() -> None:
            s = CategoricalSummary()
            for chunk in range(0, n, 100_000):
                s.update(as_list[chunk:chunk + 100_000])

        def each() -> None:
            s = CategoricalSummary()
            for v in as_list[:200_000]:
                s.add(v)

        rate = n / timed(batch, repeats)
        per_value = min(n, 200_000) / timed(each, max(1, repeats // 2))
        raw = n / timed(lambda: np.unique(values, return_counts=True), repeats)
        s = CategoricalSummary()
        s.update(as_list)
        results[f"categorical/{label}"] = {"batch": rate, "per_value": per_value, "numpy": raw,
                                           "bytes": len(s.to_bytes())}
        rows.append((f"categorical batch update ({label}, batch 100,000)", f"{rate / 1e6:.1f}M",
                     "values/s", f"numpy np.unique counts: {raw / 1e6:.1f}M/s"))
        rows.append((f"categorical per value ({label})", f"{per_value / 1e6:.2f}M", "values/s", ""))
        rows.append((f"categorical summary size ({label})", f"{len(s.to_bytes()):,}", "bytes",
                     "cap 256 exact counts + sketches"))


def bench_window(repeats: int, rows: list, results: dict) -> None:
    rng = np.random.default_rng(3)
    n = 200_000
    events = [{"price": float(p), "payment": c, "area": f"a{a}"} for p, c, a in zip(
        np.round(rng.gamma(2.0, 8.0, n), 2), np.array(["card", "cash", "wallet"])[rng.integers(0, 3, n)],
        rng.integers(0, 500, n))]

    def batch() -> None:
        acc = WindowAccumulator(0, 60_000, ["price"], ["payment", "area"])
        for chunk in range(0, n, 10_000):
            acc.add_events(events[chunk:chunk + 10_000])

    def each() -> None:
        acc = WindowAccumulator(0, 60_000, ["price"], ["payment", "area"])
        for e in events[:50_000]:
            acc.add_event(e)

    rate, per_event = n / timed(batch, repeats), 50_000 / timed(each, max(1, repeats // 2))
    results["window_events"] = {"batch": rate, "per_event": per_event}
    rows.append(("window from event dicts, add_events (1 numeric + 2 categorical, batch 10k)",
                 f"{rate / 1e3:.0f}k", "events/s", ""))
    rows.append(("window from event dicts, add_event", f"{per_event / 1e3:.0f}k", "events/s", ""))


def bench_samplers(repeats: int, rows: list, results: dict) -> None:
    n = 1_000_000
    items = list(range(n))
    weighted = [(i, 1.0 + i % 7) for i in range(n)]
    cases = {
        "uniform (Algorithm R), add": lambda: _add_all(UniformReservoir(100, seed=1), items),
        "skip-ahead (Algorithm L), add": lambda: _add_all(SkipReservoir(100, seed=1), items),
        "skip-ahead (Algorithm L), extend over a list": lambda: SkipReservoir(100, seed=1).extend(items),
        "weighted (A-ExpJ), extend": lambda: WeightedReservoir(100, seed=1).extend(weighted),
    }
    results["samplers"] = {}
    for label, fn in cases.items():
        rate = n / timed(fn, max(1, repeats // 2))
        results["samplers"][label] = rate
        rows.append((f"reservoir k=100: {label}", f"{rate / 1e6:.2f}M", "items/s", ""))


def _add_all(r: UniformReservoir, items: list) -> None:
    add = r.add
    for x in items:
        add(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--values", type=int, default=4_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1M values, 3 repeats")
    args = parser.parse_args()
    total, repeats = (1_000_000, 3) if args.quick else (args.values, args.repeats)
    rows: list[tuple[str, str, str, str]] = []
    results: dict = {"values": total, "repeats": repeats, "python": platform.python_version(),
                     "numpy": np.__version__, "machine": platform.machine(),
                     "cpus": os.cpu_count()}
    bench_numeric(total, repeats, rows, results)
    bench_categorical(total, repeats, rows, results)
    bench_window(repeats, rows, results)
    bench_samplers(repeats, rows, results)

    width = max(len(r[0]) for r in rows)
    print(f"\nSummaries, one thread (medians of {repeats} runs; {total:,} values)\n")
    print(f"{'case':<{width}}  {'value':>9}  {'unit':<9}  note")
    print(f"{'-' * width}  {'-' * 9}  {'-' * 9}  {'-' * 30}")
    for label, value, unit, note in rows:
        print(f"{label:<{width}}  {value:>9}  {unit:<9}  {note}")
    best = max(v for k, v in results["numeric_batch"].items() if k.endswith("/1000000"))
    worst_big = min(v for k, v in results["numeric_batch"].items()
                    if k.endswith(("/100000", "/1000000")))
    biggest = max(results["numeric_bytes"].values())
    print(f"\ntarget >= 10M values/s from batches (>= 100k): "
          f"{'met' if worst_big >= TARGET_RATE else 'NOT met'} "
          f"({worst_big / 1e6:.1f}M to {best / 1e6:.1f}M values/s)")
    print(f"target < 8 KB serialized: {'met' if biggest < TARGET_BYTES else 'NOT met'} "
          f"(largest {biggest:,} bytes)")
    out = ROOT / "bench" / "results" / "summaries.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
