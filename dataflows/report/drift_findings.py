"""What the drift flow found, for people: the demo's detection summary and reading drift events.

`planted_vs_found` matches the generator's planted changes with the first drift event on
their column and says when each was detected and where it was localised; `expectation_lines`
lists the expectations that alerted and the schema-version changes; the demo prints both.

>>> from dataflows.synth.generator import StreamSpec
>>> from dataflows.synth.planted_changes import parse_change
>>> spec = StreamSpec(events=12_000, seed=1, changes=(parse_change("shift:price:start=6000:scale=1.3"),))
>>> event = {"column": "price", "kind": "covariate", "test": "mean", "severity": "critical",
...          "window": {"end_ms": spec.start_ms + 60_000}, "scale": "1m",
...          "began": {"start_ms": spec.start_ms + 30_000, "end_ms": spec.start_ms + 40_000}}
>>> print(planted_vs_found(spec, [event])[0])
shift:price:start=6000:scale=1.3:add=0.0 (planted ~00:00:30): detected by mean (critical) at 1m, window ending 00:01:00 (30 s later); localised to [00:00:30, 00:00:40), the planted time is inside
"""

from __future__ import annotations

from typing import Any

from dataflows.synth.generator import StreamSpec
from dataflows.kafka.tail import read_json
from features.kafka_settings import KafkaSettings
from features.messages import iso_utc


def _clock(ms: int) -> str:
    return iso_utc(ms)[11:19]


def planted_vs_found(spec: StreamSpec, events: list[dict[str, Any]]) -> list[str]:
    """One line per planted change on a column: the first drift event on that column after
    it (time of the planted change estimated from the stream's rate), or that none came."""
    lines = []
    for change in spec.changes:
        column = getattr(change, "field", None)
        if column is None:
            continue
        planted = spec.start_ms + round(change.start * 1000 / spec.rate_per_s)
        found = sorted((e for e in events if e["column"] == column and e["window"]["end_ms"] > planted),
                       key=lambda e: e["window"]["end_ms"])
        head = f"{change.spec()} (planted ~{_clock(planted)})"
        if not found:
            lines.append(f"{head}: not detected")
            continue
        e = found[0]
        end = e["window"]["end_ms"]
        text = (f"{head}: detected by {e['test']} ({e['severity']}) at {e['scale']}, window ending "
                f"{_clock(end)} ({(end - planted) / 1000:.0f} s later)")
        began = e.get("began")
        if began:
            inside = began["start_ms"] <= planted < began["end_ms"]
            text += (f"; localised to [{_clock(began['start_ms'])}, {_clock(began['end_ms'])}), the planted "
                     f"time is {'inside' if inside else 'outside'}")
        value = getattr(change, "value", None)
        schema = [x for x in found if x["kind"] == "schema" and value is not None and value in x.get("detail", "")]
        if schema and schema[0] is not e:
            text += f"; new category {value!r} reported at {_clock(schema[0]['window']['end_ms'])}"
        expected = [x for x in found if x["kind"] == "expectation"]
        if expected and expected[0] is not e:
            text += f"; expectation {expected[0]['test']} violated in the window ending {_clock(expected[0]['window']['end_ms'])}"
        lines.append(text)
    return lines


def expectation_lines(events: list[dict[str, Any]]) -> list[str]:
    """One line per expectation that alerted (and per schema-version change): how many
    windows, the first one and what it saw.

    >>> e = {"kind": "expectation", "test": "range", "column": "km", "severity": "critical",
    ...      "window": {"end_ms": 420_000}, "detail": "km: 0.0% in [0, 100], expected >= 99.9%"}
    >>> expectation_lines([e])
    ['expectation range on km: 1 window(s), first ending 00:07:00 (critical): km: 0.0% in [0, 100], expected >= 99.9%']
    """
    firsts: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for e in sorted(events, key=lambda e: e["window"]["end_ms"]):
        if e["kind"] == "expectation" or e["test"] == "schema_version":
            firsts.setdefault((e["kind"], e["test"], e["column"]), []).append(e)
    return [f"{kind} {test} on {column}: {len(es)} window(s), first ending {_clock(es[0]['window']['end_ms'])} "
            f"({es[0]['severity']}): {es[0]['detail']}" for (kind, test, column), es in firsts.items()]


def demo_drift_lines(bootstrap: str, events_topics: list[str], spec: StreamSpec,
                     settings: KafkaSettings = KafkaSettings()) -> list[str]:
    """The demo's drift section: how many drift events, and what became of each planted change."""
    events = [e for topic in dict.fromkeys(events_topics) for _key, e in read_json(bootstrap, topic, settings)]
    lines = [f"drift events: {len(events)} on {', '.join(dict.fromkeys(events_topics))}"]
    return lines + [f"  {line}" for line in planted_vs_found(spec, events) + expectation_lines(events)]
