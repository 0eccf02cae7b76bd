"""CPU per event of the model flow's feature inputs alone (`FeatureInputs.on_event`), offline.

The three feature inputs of `bench_model.py`'s "with 3 feature inputs" case (a 1-minute
tumbling set and a last-10 set of the ride's area), over the generator's rides in event-time
order, as a model shard without segments sees them. Process CPU time, best of `--repeat`
runs (the machine is shared: the minimum is the least disturbed).

    PYTHONPATH=. .venv/bin/python bench/bench_feature_inputs.py --events 30000 --repeat 5
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_model import FEATURE_INPUTS, config_text  # noqa: E402


def main() -> None:
    from dataflows.synth.generator import StreamSpec
    from dataflows.synth.produce import write_jsonl
    import tomllib

    from features.config import parse_config
    from features.models.feature_inputs import FeatureInputs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        events_path = Path(directory) / "events.jsonl"
        write_jsonl(StreamSpec(events=args.events, seed=7, malformed_fraction=0.0), events_path)
        rides = [orjson.loads(line) for line in events_path.read_bytes().splitlines()]
    config = parse_config(tomllib.loads(config_text(False, "hoeffding_tree_classifier", {}, features=True)))
    spec = config.models[0]
    events = sorted(((r["ts"], r) for r in rides if isinstance(r.get("ts"), int) and "area" in r),
                    key=lambda e: e[0])
    best = float("inf")
    for _ in range(args.repeat):
        inputs = FeatureInputs(config.feature_sets, spec.features, schema=config.schema)
        on_event = inputs.on_event
        started = time.process_time()
        for t, fields in events:
            on_event(t, fields)
        best = min(best, time.process_time() - started)
    print(f"{len(events)} events, inputs {', '.join(FEATURE_INPUTS)}: "
          f"{best / len(events) * 1e6:.2f} µs CPU per event (best of {args.repeat})")


if __name__ == "__main__":
    main()
