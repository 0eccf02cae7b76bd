"""What a base window needs beyond its summaries: the per-event expectation checks and the
count of events per schema version. Carried with each partition's partial window and merged
across partitions like the summaries (counts add; examples keep partition order).

>>> from features.expectations.config import Expectation
>>> from features.expectations.value_checks import Matches
>>> regex = Expectation("regex", Matches("id", "^ride-"), True)
>>> a = WindowChecks.empty((regex,), "v", 1); a.add([{"id": "ride-1"}, {"id": "x", "v": 2}])
>>> b = WindowChecks.empty((regex,), "v", 1); b.add([{"id": "ride-2", "v": 2}])
>>> m = merge([a, b]); m.checks[0].checked, m.checks[0].failed, m.versions
(3, 1, {'1': 1, '2': 2})
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from features.expectations.config import Expectation
from features.expectations.value_checks import ValueCheck, merge_checks


@dataclass
class WindowChecks:
    """The per-event checks of one window (in the order of `expectations`) and its events
    per schema version (the `version_field` value as text; `default` when absent)."""

    expectations: tuple[Expectation, ...]
    checks: list[ValueCheck]
    version_field: str | None
    default_version: str
    versions: dict[str, int]

    @classmethod
    def empty(cls, expectations: Sequence[Expectation], version_field: str | None,
              default_version: int | str) -> WindowChecks:
        """No event yet; only the per-event expectations of `expectations` are kept."""
        kept = tuple(e for e in expectations if e.per_event)
        return cls(kept, [e.spec.checker() for e in kept], version_field, str(default_version), {})  # type: ignore[union-attr]

    def add(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Check a batch of events (their fields)."""
        for expectation, check in zip(self.expectations, self.checks):
            check.update(expectation.value(f) for f in events)
        if self.version_field is None:
            self.versions[self.default_version] = self.versions.get(self.default_version, 0) + len(events)
            return
        for f in events:
            raw = f.get(self.version_field)
            version = self.default_version if raw is None else str(raw)
            self.versions[version] = self.versions.get(version, 0) + 1


def merge(parts: Sequence[WindowChecks]) -> WindowChecks:
    """One window's checks from its partitions' (in the given order; inputs untouched)."""
    first = parts[0]
    checks = list(first.checks)
    versions = dict(first.versions)
    for part in parts[1:]:
        checks = [merge_checks(a, b) for a, b in zip(checks, part.checks)]
        for v, n in part.versions.items():
            versions[v] = versions.get(v, 0) + n
    return WindowChecks(first.expectations, checks, first.version_field, first.default_version, versions)
