"""Drift monitors in the config: which columns, which windows and scales, which reference,
which tests, which alert policy.

```toml
[[monitors]]
name = "inputs"
kind = "covariate"                    # covariate | prediction | label
numeric = ["price", "distance_km"]
categorical = ["payment"]
window = "1m"                         # the base window: summarised once, emitted
scales = ["1m", "5m", "1h"]           # tested at each, by merging base windows
min_count = 100                       # a side with fewer values is not tested
reference = { type = "first_windows", windows = 10 }
# or { type = "file", path = "ref.json" }   (driftline reference build)
# or { type = "previous_period", period = "1d" }   (seasonal data)
numeric_tests = ["ks", "mean", "std", "psi", "null_rate"]
categorical_tests = ["chi2", "psi", "new_category", "vanished_category", "null_rate"]
thresholds = { psi = 0.2 }            # effect size of a warning, per test
critical = { psi = 0.5 }              # effect size of a critical alert, per test
policy = { fdr = 0.01, consecutive = 2, immediate_p = 1e-6, cooldown = "1h", min_severity = "warning" }
multivariate = { sample = 200, permutations = 200 }   # MMD over the numeric columns (optional)
expectations = [ { column = "price", range = { min = 0, max = 500 }, mostly = 0.99 } ]  # features.expectations.config
runbook = "https://wiki.example.com/runbooks/pricing-inputs"   # text or URL, carried in every drift event
```

>>> from features.schema import parse_schema
>>> schema = parse_schema({"entity": "area", "event_time": "ts",
...     "fields": {"area": "string", "price": "float", "payment": "category"}})
>>> m = parse_monitors([{"name": "inputs", "numeric": ["price"], "categorical": ["payment"],
...                      "window": "1m", "scales": ["1m", "5m"]}], schema)[0]
>>> m.scales_ms, m.reference.type, m.policy.consecutive, m.events_topic
((60000, 300000), 'first_windows', 2, 'drift.events')
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from features.drift.alert_policy import DEFAULT_THRESHOLDS, SEVERITIES, AlertPolicy
from features.drift.categorical import CATEGORICAL_TESTS
from features.config_values import (
    ConfigError,
    join_key,
    parse_duration_ms,
    read_choice,
    read_duration_ms,
    read_float,
    read_int,
    read_str,
    read_str_list,
    read_runbook,
    read_table,
    reject_unknown_keys,
)
from features.expectations.config import Expectation, parse_expectations
from features.drift.numeric import NUMERIC_TESTS
from features.schema import EventSchema

MONITOR_KINDS = ("covariate", "prediction", "label")
REFERENCE_TYPES = ("first_windows", "file", "previous_period")
DEFAULT_NUMERIC_TESTS = ("ks", "mean", "std", "psi", "null_rate")
DEFAULT_CATEGORICAL_TESTS = ("chi2", "psi", "new_category", "vanished_category", "null_rate")
CATEGORICAL_TYPES = ("category", "string", "bool", "int")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_KEYS = {"name", "kind", "numeric", "categorical", "window", "scales", "min_count", "reference",
         "numeric_tests", "categorical_tests", "thresholds", "critical", "policy", "multivariate",
         "events_topic", "summaries_topic", "expectations", "runbook"}
_POLICY_KEYS = {"fdr", "consecutive", "immediate_p", "cooldown", "min_severity"}


@dataclass(frozen=True)
class ReferenceSpec:
    """Where a monitor's reference comes from: a file written by `driftline reference
    build`, the monitor's first `windows` base windows, or the same span `period_ms` earlier.

    >>> ReferenceSpec("previous_period", period_ms=86_400_000).period_ms
    86400000
    """

    type: str
    path: Path | None = None
    windows: int = 0
    period_ms: int = 0


@dataclass(frozen=True)
class MultivariateSpec:
    """MMD over the numeric columns, on reservoir samples of `sample` rows per window."""

    sample: int = 200
    permutations: int = 200


@dataclass(frozen=True)
class Monitor:
    """One `[[monitors]]` entry (module docstring)."""

    name: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    window_ms: int
    scales_ms: tuple[int, ...]
    reference: ReferenceSpec
    kind: str = "covariate"
    min_count: int = 100
    numeric_tests: tuple[str, ...] = DEFAULT_NUMERIC_TESTS
    categorical_tests: tuple[str, ...] = DEFAULT_CATEGORICAL_TESTS
    policy: AlertPolicy = AlertPolicy()
    multivariate: MultivariateSpec | None = None
    events_topic: str = "drift.events"
    summaries_topic: str = "drift.summaries"
    expectations: tuple[Expectation, ...] = ()
    version_field: str | None = None  # [schema] version_field: the events' schema version
    schema_version: int = 1  # [schema] version: the version of events without that field
    runbook: str | None = None  # what to do when it alerts (text or URL), carried in every drift event

    @property
    def columns(self) -> tuple[str, ...]:
        """Every monitored column, numeric first."""
        return self.numeric + self.categorical


def _tests(table: Mapping[str, Any], key: str, prefix: str, known: Mapping[str, Any],
           default: tuple[str, ...]) -> tuple[str, ...]:
    tests = read_str_list(table, key, prefix, default=list(default))
    for test in tests:
        if test not in known:
            raise ConfigError(join_key(prefix, key), f"test names out of {', '.join(known)}", test,
                              f"remove {test!r} or correct its spelling.")
    return tuple(dict.fromkeys(tests))


def _levels(table: Mapping[str, Any], key: str, prefix: str) -> dict[str, float]:
    raw = read_table(table, key, prefix)
    full = join_key(prefix, key)
    out = {}
    for test, value in raw.items():
        if test not in DEFAULT_THRESHOLDS:
            raise ConfigError(join_key(full, test), f"a test name out of {', '.join(DEFAULT_THRESHOLDS)}",
                              test, "remove it or correct its spelling.")
        out[test] = read_float(raw, test, full, low=0.0)
    return out


def parse_policy(table: Mapping[str, Any], prefix: str, thresholds: Mapping[str, float],
                 critical: Mapping[str, float]) -> AlertPolicy:
    """The `policy` table of a monitor.

    >>> parse_policy({"cooldown": "30m", "consecutive": 3}, "monitors[0].policy", {}, {}).cooldown_ms
    1800000
    """
    reject_unknown_keys(table, _POLICY_KEYS, prefix)
    defaults = AlertPolicy()
    return AlertPolicy(
        fdr=read_float(table, "fdr", prefix, default=defaults.fdr, low=0.0, high=1.0),
        consecutive=read_int(table, "consecutive", prefix, default=defaults.consecutive, minimum=1),
        immediate_p=read_float(table, "immediate_p", prefix, default=defaults.immediate_p, low=0.0, high=1.0),
        cooldown_ms=read_duration_ms(table, "cooldown", prefix, default=defaults.cooldown_ms),
        min_severity=read_choice(table, "min_severity", prefix, SEVERITIES, default=defaults.min_severity),
        thresholds=thresholds, critical=critical,
    )


def parse_reference(table: Mapping[str, Any], prefix: str, window_ms: int, scales_ms: tuple[int, ...],
                    base_dir: Path | None) -> ReferenceSpec:
    """The `reference` table of a monitor.

    >>> parse_reference({"type": "first_windows", "windows": 5}, "r", 60_000, (60_000,), None).windows
    5
    """
    kind = read_choice(table, "type", prefix, REFERENCE_TYPES)
    if kind == "first_windows":
        reject_unknown_keys(table, {"type", "windows"}, prefix)
        return ReferenceSpec(kind, windows=read_int(table, "windows", prefix, default=10, minimum=1))
    if kind == "file":
        reject_unknown_keys(table, {"type", "path"}, prefix)
        path = Path(read_str(table, "path", prefix, example="reference.json"))
        return ReferenceSpec(kind, path=path if path.is_absolute() or base_dir is None else base_dir / path)
    reject_unknown_keys(table, {"type", "period"}, prefix)
    period = read_duration_ms(table, "period", prefix)
    if period <= 0 or period % window_ms or period < max(scales_ms):
        raise ConfigError(join_key(prefix, "period"),
                          f"a multiple of the window ({window_ms} ms), at least the largest scale",
                          table.get("period"), 'compare with the same window one cycle earlier, e.g. period = "1d".')
    return ReferenceSpec(kind, period_ms=period)


def _columns(table: Mapping[str, Any], key: str, prefix: str, schema: EventSchema,
             allowed: tuple[str, ...]) -> tuple[str, ...]:
    names = read_str_list(table, key, prefix, default=[])
    for name in names:
        try:
            spec = schema.field(name)
        except KeyError:
            raise ConfigError(join_key(prefix, key), f"fields declared in [schema.fields] "
                              f"({', '.join(schema.field_names)})", name,
                              f"declare {name!r} in [schema.fields] or remove it.") from None
        if spec.type not in allowed:
            raise ConfigError(join_key(prefix, key), f"fields of type {', '.join(allowed)}",
                              f"{name} ({spec.type})", f"monitor {name!r} under the other column list.")
    return tuple(dict.fromkeys(names))


def parse_monitor(table: Mapping[str, Any], schema: EventSchema, prefix: str,
                  base_dir: Path | None = None) -> Monitor:
    """One `[[monitors]]` table."""
    reject_unknown_keys(table, _KEYS, prefix)
    name = read_str(table, "name", prefix, example="inputs")
    if not _NAME.match(name):
        raise ConfigError(join_key(prefix, "name"), "letters, digits, _ . - (starting with a letter or _)",
                          name, "rename the monitor; the name is part of message ids.")
    numeric = _columns(table, "numeric", prefix, schema, ("float", "int"))
    categorical = _columns(table, "categorical", prefix, schema, CATEGORICAL_TYPES)
    if not numeric and not categorical:
        raise ConfigError(join_key(prefix, "numeric"), "at least one numeric or categorical column", None,
                          'list columns, e.g. numeric = ["price"].')
    both = set(numeric) & set(categorical)
    if both:
        raise ConfigError(join_key(prefix, "categorical"), "columns not also listed as numeric",
                          sorted(both), "give each column one kind.")
    window = read_duration_ms(table, "window", prefix, default="1m")
    if window <= 0:
        raise ConfigError(join_key(prefix, "window"), "a positive duration", table.get("window"),
                          'write e.g. window = "1m".')
    raw_scales = table.get("scales", [window])
    if not isinstance(raw_scales, list) or not raw_scales:
        raise ConfigError(join_key(prefix, "scales"), "a non-empty list of durations", raw_scales,
                          'write e.g. scales = ["1m", "5m", "1h"].')
    scales = []
    for i, raw in enumerate(raw_scales):
        try:
            scale = parse_duration_ms(raw)
        except ValueError:
            scale = -1
        if scale <= 0 or scale % window:
            raise ConfigError(join_key(prefix, f"scales[{i}]"), f"a positive multiple of the window ({window} ms)",
                              raw_scales[i], "scales are built by merging base windows; use k x window.")
        scales.append(scale)
    scales_ms = tuple(sorted(set(scales)))
    thresholds, critical = _levels(table, "thresholds", prefix), _levels(table, "critical", prefix)
    multivariate = None
    if "multivariate" in table:
        mv_prefix = join_key(prefix, "multivariate")
        mv = read_table(table, "multivariate", prefix)
        reject_unknown_keys(mv, {"sample", "permutations"}, mv_prefix)
        if len(numeric) < 2:
            raise ConfigError(mv_prefix, "at least two numeric columns for a multivariate test", list(numeric),
                              "add numeric columns or remove the multivariate table.")
        multivariate = MultivariateSpec(read_int(mv, "sample", mv_prefix, default=200, minimum=10),
                                        read_int(mv, "permutations", mv_prefix, default=200, minimum=20))
    return Monitor(
        name=name, numeric=numeric, categorical=categorical, window_ms=window, scales_ms=scales_ms,
        reference=parse_reference(read_table(table, "reference", prefix) or {"type": "first_windows"},
                                  join_key(prefix, "reference"), window, scales_ms, base_dir),
        kind=read_choice(table, "kind", prefix, MONITOR_KINDS, default="covariate"),
        min_count=read_int(table, "min_count", prefix, default=100, minimum=2),
        numeric_tests=_tests(table, "numeric_tests", prefix, NUMERIC_TESTS, DEFAULT_NUMERIC_TESTS),
        categorical_tests=_tests(table, "categorical_tests", prefix, CATEGORICAL_TESTS, DEFAULT_CATEGORICAL_TESTS),
        policy=parse_policy(read_table(table, "policy", prefix), join_key(prefix, "policy"), thresholds, critical),
        multivariate=multivariate,
        events_topic=read_str(table, "events_topic", prefix, default="drift.events"),
        summaries_topic=read_str(table, "summaries_topic", prefix, default="drift.summaries"),
        expectations=parse_expectations(table.get("expectations"), prefix, numeric, categorical, schema),
        version_field=schema.version_field, schema_version=schema.version,
        runbook=read_runbook(table, prefix),
    )


def parse_monitors(raw: Any, schema: EventSchema, base_dir: Path | None = None) -> tuple[Monitor, ...]:
    """The `[[monitors]]` array (absent: no monitors); names must be unique.

    >>> parse_monitors(None, None)
    ()
    """
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise ConfigError("monitors", "an array of tables ([[monitors]])", raw,
                          "write each monitor as a [[monitors]] section.")
    monitors = tuple(parse_monitor(t, schema, f"monitors[{i}]", base_dir) for i, t in enumerate(raw))
    seen: set[str] = set()
    for i, m in enumerate(monitors):
        if m.name in seen:
            raise ConfigError(f"monitors[{i}].name", "a unique monitor name", m.name, "rename one of the two monitors.")
        seen.add(m.name)
    return monitors
