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

from dataflows.kafka.tail import read_json
from features.kafka_settings import KafkaSettings
from features.models.messages import SNAPSHOT_SCHEMA


class ExportError(RuntimeError):
    """No snapshot matches, or several segments do and none was chosen."""


def read_snapshots(bootstrap: str, topic: str, model: str,
                   settings: KafkaSettings = KafkaSettings()) -> list[dict[str, Any]]:
    """Every snapshot message (part) of `model` now in `topic`."""
    wanted = model.encode()  # snapshots are keyed by their model
    return [doc for key, doc in read_json(bootstrap, topic, settings)
            if key == wanted and doc.get("schema") == SNAPSHOT_SCHEMA and doc.get("model") == model]


def latest_snapshot(parts: list[dict[str, Any]], model: str,
                    segment: str | None = None) -> tuple[dict[str, Any], bytes]:
    """The complete snapshot with the latest event time (then version, then examples learned):
    its first part's message and the pickle joined from its parts (repeats dropped by `id`).

    >>> snaps = [{"id": f"m/{t}/0", "segment": None, "as_of_ms": t, "version": 1, "examples_learned": t,
    ...           "part": 0, "parts": 1, "pickle_b64": "eHg="} for t in (5, 9, 7)]
    >>> message, data = latest_snapshot(snaps, "m")
    >>> message["as_of_ms"], data
    (9, b'xx')
    """
    segments = {s["segment"] for s in parts}
    if segment is None and len(segments) > 1:
        shown = ", ".join(sorted(str(s) for s in segments)[:10])
        raise ExportError(f"model {model!r} has one model per segment ({len(segments)}: {shown}, ...); "
                          "choose one with --segment")
    groups: dict[tuple[int, int, int], dict[int, dict[str, Any]]] = {}
    for message in parts:
        if segment is None or message["segment"] == segment:
            key = (message["as_of_ms"], message["version"], message["examples_learned"])
            groups.setdefault(key, {})[message["part"]] = message
    complete = [key for key, found in groups.items() if len(found) == next(iter(found.values()))["parts"]]
    if not complete:
        where = f" for segment {segment!r}" if segment is not None else ""
        raise ExportError(f"no complete snapshot of model {model!r}{where} yet; snapshots are written every "
                          "`snapshot_every` of event time and when a bounded run ends")
    found = groups[max(complete)]
    data = b"".join(base64.b64decode(found[i]["pickle_b64"]) for i in range(len(found)))
    return found[0], data


def export_model(bootstrap: str, topic: str, model: str, output: Path, segment: str | None = None,
                 settings: KafkaSettings = KafkaSettings()) -> dict[str, Any]:
    """Write the latest snapshot's pickle to `output` (atomically); returns its first message."""
    message, data = latest_snapshot(read_snapshots(bootstrap, topic, model, settings), model, segment)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, output)
    return message
