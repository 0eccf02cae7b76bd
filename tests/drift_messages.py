"""The part of drift messages that two runs over the same events must agree on.

Two runs (Kafka and replay, or a run resumed after a crash) cut the input into different
batches, so moments are summed in a different order (rounding in the last bits), and the
KLL sketches compact with unseeded random bits (DataSketches), so sketch bytes and
sketch-based statistics (KS, PSI, JS, Wasserstein, quantiles) differ within the sketches'
stated errors. `comparable` keeps everything else, floats rounded to 9 significant digits:
ids, windows, counts, exact statistics, alert decisions and localisation.
"""

from __future__ import annotations

from typing import Any

import orjson

EXACT_TESTS = {"mean", "std", "null_rate", "missing", "chi2", "new_category", "vanished_category",
               "in", "not_null", "type", "regex", "compare", "schema_version"}  # expectations: counts
_SKETCHED_STATS = {"q05", "q25", "q50", "q75", "q95"}
_SUMMARY_EXACT = ("kind", "count", "nulls", "infinite", "invalid", "min", "max", "other", "counts", "mean", "m2")


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.9g}")
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_round(v) for v in value]
    return value


def comparable(message: dict[str, Any]) -> bytes:
    """A canonical form of a drift message (other messages: without `emitted_at`)."""
    m = {k: v for k, v in message.items() if k != "emitted_at"}
    schema = m.get("schema", "")
    if schema.startswith("driftline.window_summary/"):
        column = m["summary"]["columns"][m["column"]]
        m["summary"] = {**{k: v for k, v in m["summary"].items() if k != "columns"},
                        "column": {k: column[k] for k in _SUMMARY_EXACT if k in column}}
    elif schema.startswith("driftline.drift_event/"):
        if m["test"] not in EXACT_TESTS:
            # (a range expectation on a sketch: its failing count is an estimate too)
            m = {k: v for k, v in m.items() if k not in ("statistic", "p_value", "effect_size", "detail", "failing")}
        for side in ("reference", "current"):
            m[side] = {k: v for k, v in m[side].items() if k not in _SKETCHED_STATS}
    return orjson.dumps(_round(m), option=orjson.OPT_SORT_KEYS)
