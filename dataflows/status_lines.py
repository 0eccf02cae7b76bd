"""Human-readable progress and summary lines built from a flow's counters."""

from __future__ import annotations

import time
from collections.abc import Callable

from dataflows.counters import FlowCounters
from dataflows.progress import RateMeter


def ingest_progress(counters: FlowCounters) -> Callable[[], str]:
    """A render function for ProgressPrinter: events/s, processed, rejected.

    >>> counters = FlowCounters()
    >>> counters.add({"events_in": 10, "valid": 9, "rejected.not_json": 1})
    >>> ingest_progress(counters)().split(" | ")[1:]
    ['processed 10', 'valid 9', 'rejected 1']
    """
    meter = RateMeter()

    def render() -> str:
        seen = counters.get("events_in")
        return (f"{meter.rate(seen):>9,.0f} events/s | processed {seen:,} | valid {counters.get('valid'):,}"
                f" | rejected {counters.total('rejected.'):,}")

    return render


def ingest_summary(counters: FlowCounters) -> str:
    """A multi-line summary of what ingestion saw.

    >>> counters = FlowCounters()
    >>> counters.add({"events_in": 10, "valid": 9, "rejected.not_json": 1})
    >>> print(ingest_summary(counters).splitlines()[1])
      valid events       9
    """
    elapsed = max(time.monotonic() - counters.started, 1e-9)
    seen = counters.get("events_in")
    lines = [
        f"processed {seen:,} events in {elapsed:.1f} s ({seen / elapsed:,.0f} events/s)",
        f"  valid events       {counters.get('valid'):,}",
        f"  rejected (to DLQ)  {counters.total('rejected.'):,}",
    ]
    lines += [f"    {reason:<18} {n:,}" for reason, n in counters.with_prefix("rejected.").items()]
    unknown = counters.with_prefix("unknown_category.")
    if unknown:
        lines.append("  values outside a declared vocabulary (kept, counted as a drift signal):")
        lines += [f"    {field:<18} {n:,}" for field, n in unknown.items()]
    return "\n".join(lines)
