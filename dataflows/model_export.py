"""`driftline model export`: the latest snapshot of a model, from `model.snapshots` to a pickle file.

A service loads the file with `pickle.load` (River must be installed; driftline need not be):

    with open("model.pkl", "rb") as f:
        model = pickle.load(f)
    model.predict_proba_one({"price": 12.5, "eta_min": 7.0})
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import orjson

from dataflows.kafka_io import KafkaInput
from features.model_messages import SNAPSHOT_SCHEMA


class ExportError(RuntimeError):
    """No snapshot matches, or several segments do and none was chosen."""


def read_snapshots(bootstrap: str, topic: str, model: str) -> list[dict[str, Any]]:
    """Every snapshot message of `model` now in `topic` (read to the end offsets it has now)."""
    source = KafkaInput(bootstrap, [topic], stop_at_end=True)
    wanted = model.encode()
    found: list[dict[str, Any]] = []
    for part in source.list_parts():
        reader = source.build_part("export", part, None)
        try:
            while True:
                for msg in reader.next_batch():
                    if msg.key == wanted and msg.value:  # snapshots are keyed by their model
                        doc = orjson.loads(msg.value)
                        if doc.get("schema") == SNAPSHOT_SCHEMA and doc.get("model") == model:
                            found.append(doc)
        except StopIteration:
            pass
        finally:
            reader.close()
    return found


def latest_snapshot(snapshots: list[dict[str, Any]], model: str, segment: str | None = None) -> dict[str, Any]:
    """The snapshot with the latest event time (then version, then examples learned).

    >>> snaps = [{"segment": None, "as_of_ms": t, "version": 1, "examples_learned": t} for t in (5, 9, 7)]
    >>> latest_snapshot(snaps, "m")["as_of_ms"]
    9
    """
    segments = {s["segment"] for s in snapshots}
    if segment is None and len(segments) > 1:
        shown = ", ".join(sorted(str(s) for s in segments)[:10])
        raise ExportError(f"model {model!r} has one model per segment ({len(segments)}: {shown}, ...); "
                          "choose one with --segment")
    chosen = [s for s in snapshots if s["segment"] == segment] if segment is not None else snapshots
    if not chosen:
        where = f" for segment {segment!r}" if segment is not None else ""
        raise ExportError(f"no snapshot of model {model!r}{where} yet; snapshots are written every "
                          "`snapshot_every` of event time and when a bounded run ends")
    return max(chosen, key=lambda s: (s["as_of_ms"], s["version"], s["examples_learned"]))


def export_model(bootstrap: str, topic: str, model: str, output: Path, segment: str | None = None) -> dict[str, Any]:
    """Write the latest snapshot's pickle to `output` (atomically); returns the snapshot message."""
    snapshot = latest_snapshot(read_snapshots(bootstrap, topic, model), model, segment)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    partial.write_bytes(base64.b64decode(snapshot["pickle_b64"]))
    os.replace(partial, output)
    return snapshot
