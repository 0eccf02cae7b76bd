"""A/B of two checkouts of driftline on the features benchmark: one broker, one topic, the cases
of `bench_features.py` run from each checkout in alternation, and the ratios new ÷ old.

Usage: git worktree add /tmp/old <commit>
       .venv/bin/python bench/ab_features.py --old /tmp/old [--new .] [--rounds 3] [--events 1000000]
       [--cases driftline,driftline_wide]

This shared machine moves identical code by 10-20% from run to run, more than most changes do;
two checkouts measured in alternation on the same topic see the same neighbours, so their ratio
is what a change is judged by. Both run with this interpreter and its packages (the project's
venv), each with its own source tree first on the path; a checkout with C modules must have
them built in place (`pip install -e` in it, or its own venv's install) or it runs its Python
fallbacks: the table says which it ran. Also prints each case ÷ the Bytewax read-and-parse
floor (`bytewax_floor`, run from the new checkout in each round). Best of the rounds for each.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_features import produce_workload, reference_config  # noqa: E402

PROBE = ("import features.messages as m\n"
         "try:\n    import features.windows.panes as p\nexcept ImportError:\n    p = None\n"
         "print('compiled' if getattr(m, '_rows', None) is not None and getattr(p, '_fold', None) is not None "
         "else 'Python fallbacks' if hasattr(m, '_rows') else 'no C modules')")


def run_case(tree: Path, case: str, bootstrap: str, topic: str, events: int) -> dict:
    """One case of `tree`'s bench_features.py in a fresh process, with `tree` first on the path."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "bench/bench_features.py", "--case", case, "--bootstrap", bootstrap,
                          "--topic", topic, "--events", str(events)], cwd=tree, env=env, capture_output=True,
                         text=True, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    return {"per_s": result["events"] / result["seconds"], "per_cpu_s": result["events"] / result["cpu_seconds"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", type=Path, required=True, help="the baseline checkout")
    parser.add_argument("--new", type=Path, default=HERE.parent, help="the checkout measured (default: this one)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--cases", default="driftline,driftline_wide", help="bench_features cases, comma-separated")
    args = parser.parse_args()
    trees = {"old": args.old.resolve(), "new": args.new.resolve()}
    cases = args.cases.split(",")
    for label, tree in trees.items():
        ran = subprocess.run([sys.executable, "-c", PROBE], cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)},
                             capture_output=True, text=True, check=True).stdout.strip()
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True, text=True).stdout
        print(f"{label}: {tree} at {head.strip() or '?'} ({ran})", file=sys.stderr)

    from dataflows.kafka.broker import create_topics, local_broker

    config, wide = reference_config(), reference_config(variant="wide")
    results: dict[tuple[str, str], list[dict]] = {}
    with local_broker() as broker:
        topic = config.source.topic
        outputs = [fs.topic for fs in (*config.feature_sets, *wide.feature_sets)] + [
            config.source.dead_letter_topic, config.source.late_topic]
        create_topics(broker.bootstrap, [topic, *outputs], partitions=config.source.partitions)
        produce_workload(broker.bootstrap, topic, args.events, args.entities)
        for round_ in range(args.rounds):
            runs = [(case, label) for case in cases for label in trees] + [("bytewax_floor", "new")]
            for case, label in runs:
                result = run_case(trees[label], case, broker.bootstrap, topic, args.events)
                results.setdefault((case, label), []).append(result)
                print(f"  round {round_ + 1}: {case} ({label}) {result['per_s']:,.0f} events/s, "
                      f"{result['per_cpu_s']:,.0f} per CPU-s", file=sys.stderr, flush=True)

    def best(case: str, label: str, key: str) -> float:
        return max(r[key] for r in results[(case, label)])

    print(f"\n{args.events:,} events, {args.entities:,} entities, {args.rounds} rounds in alternation; best of each")
    print(f"{'case':<18} {'new ÷ old':>10} {'per CPU-s':>10}  {'paired rounds (wall)':<24} "
          f"{'old ÷ floor':>12} {'new ÷ floor':>12}")
    floor, floor_cpu = best("bytewax_floor", "new", "per_s"), best("bytewax_floor", "new", "per_cpu_s")
    for case in cases:
        paired = ", ".join(f"{n['per_s'] / o['per_s']:.2f}" for o, n in zip(results[(case, 'old')], results[(case, 'new')]))
        old, new = best(case, "old", "per_s"), best(case, "new", "per_s")
        old_cpu, new_cpu = best(case, "old", "per_cpu_s"), best(case, "new", "per_cpu_s")
        print(f"{case:<18} {new / old:>10.2f} {new_cpu / old_cpu:>10.2f}  {paired:<24} "
              f"{old / floor:>5.2f} {old_cpu / floor_cpu:>5.2f}  {new / floor:>5.2f} {new_cpu / floor_cpu:>5.2f}")
    print("(÷ floor: by wall time, then per CPU-second)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
