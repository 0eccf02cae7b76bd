"""The cost of expectations in the drift flow's first step, against the same step without them.

Usage: .venv/bin/python bench/bench_expectations.py [--events 200000] [--repeats 5]

Decodes the demo stream once, then times `PartitionWindows.add` (the drift flow's
per-partition step: base-window summaries of the monitored columns) over it in batches of
1,000 events, for the `inputs` monitor of deploy/rides.toml:

- baseline: the monitor without expectations;
- summary expectations only (range, in, not_null, type number: answered from the window
  summaries, so they cost nothing per event);
- every expectation of deploy/rides.toml (adds the per-event regex and compare);
- the same plus a schema-version field read per event.

Each figure is the least of --repeats runs (the machine is shared); it prints events/s and
the ratio of each to the baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import sys
import time
import tomllib
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing

from dataflows.cli.demo import demo_spec  # noqa: E402
from dataflows.synth.generator import generate  # noqa: E402
from features.config import parse_config  # noqa: E402
from features.monitors.base_windows import PartitionWindows  # noqa: E402
from features.events import Event, EventDecoder  # noqa: E402
from features.monitors.config import Monitor  # noqa: E402


def _events(n: int) -> list[Event]:
    document = tomllib.loads((ROOT / "deploy" / "rides.toml").read_text())
    config = parse_config(document)
    decoder = EventDecoder(config.schema, config.source.limits)
    out = []
    for i, m in enumerate(generate(demo_spec(n, seed=7))):
        if m.kind == "event":
            e = decoder.decode(m.value, now_ms=2**62, partition=0, offset=i)
            if type(e) is Event:
                out.append(e)
    out.sort(key=lambda e: e.time_ms)  # one partition, in order: no late events to skew the figure
    return out


def _run(monitor: Monitor, events: list[Event]) -> float:
    windows = PartitionWindows((monitor,), lateness_ms=10_000)
    started = time.perf_counter()
    for i in range(0, len(events), 1000):
        windows.add(events[i:i + 1000])
    windows.flush()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    events = _events(args.events)
    full = parse_config(tomllib.loads((ROOT / "deploy" / "rides.toml").read_text())).monitors[0]
    variants = {
        "no expectations (baseline)": replace(full, expectations=()),
        "summary expectations only": replace(full, expectations=tuple(e for e in full.expectations if not e.per_event)),
        "all rides.toml expectations": full,
        "all + schema-version field": replace(full, version_field="schema_version"),
    }
    best = {name: min(_run(m, events) for _ in range(args.repeats)) for name, m in variants.items()}
    base = best["no expectations (baseline)"]
    print(f"drift step (PartitionWindows.add), {len(events):,} events, least of {args.repeats} runs")
    for name, seconds in best.items():
        print(f"  {name:30s} {len(events) / seconds:12,.0f} events/s   time x{seconds / base:.2f}")


if __name__ == "__main__":
    main()
