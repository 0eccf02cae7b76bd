"""Human-readable progress and summary lines built from a flow's counters."""

from __future__ import annotations

import time
from collections.abc import Callable

from dataflows.counters import FlowCounters
from dataflows.report.model_findings import model_counter_lines
from dataflows.cli.progress import RateMeter


def flow_progress(counters: FlowCounters) -> Callable[[], str]:
    """A render function for ProgressPrinter: events/s, processed, rejected, features, late.

    >>> counters = FlowCounters()
    >>> counters.add({"events_in": 10, "valid": 9, "rejected.not_json": 1})
    >>> flow_progress(counters)().split(" | ")[1:]
    ['processed 10', 'valid 9', 'rejected 1', 'features out 0', 'late 0']
    """
    meter = RateMeter()

    def render() -> str:
        seen = counters.get("events_in")
        return (f"{meter.rate(seen):>9,.0f} events/s | processed {seen:,} | valid {counters.get('valid'):,}"
                f" | rejected {counters.total('rejected.'):,} | features out {counters.get('features_out'):,}"
                f" | late {counters.get('late'):,}"
                + (f" | drift summaries {counters.get('drift_summaries_out'):,} | drift events "
                   f"{counters.get('drift_events_out'):,}" if counters.get("drift_summaries_out") else ""))

    return render


def flow_summary(counters: FlowCounters, late_topic: str = "<topic>.late") -> str:
    """A multi-line summary of what a flow saw and wrote.

    >>> counters = FlowCounters()
    >>> counters.add({"events_in": 10, "valid": 9, "rejected.not_json": 1})
    >>> print(flow_summary(counters).splitlines()[1])
      valid events          9
    """
    elapsed = max(time.monotonic() - counters.started, 1e-9)
    seen = counters.get("events_in")
    lines = [
        f"processed {seen:,} events in {elapsed:.1f} s ({seen / elapsed:,.0f} events/s)",
        f"  valid events          {counters.get('valid'):,}",
        f"  rejected (to DLQ)     {counters.total('rejected.'):,}",
    ]
    lines += [f"    {reason:<21} {n:,}" for reason, n in counters.with_prefix("rejected.").items()]
    unknown = counters.with_prefix("unknown_category.")
    if unknown:
        lines.append("  values outside a declared vocabulary (kept, counted as a drift signal):")
        lines += [f"    {field:<21} {n:,}" for field, n in unknown.items()]
    if counters.get("features_out") or counters.get("late"):
        lines.append(f"  feature messages out  {counters.get('features_out'):,}")
        lines += [f"    {name:<21} {n:,}" for name, n in counters.with_prefix("features_out.").items()]
        lines.append(f"  late events (to {late_topic}) {counters.get('late'):,}")
    if counters.get("drift_summaries_out"):
        lines.append(f"  drift summaries out   {counters.get('drift_summaries_out'):,}")
        lines.append(f"  drift events out      {counters.get('drift_events_out'):,}")
        if counters.get("drift.late_after_close"):
            lines.append(f"  drift: events of an idle partition's published windows, left out "
                         f"{counters.get('drift.late_after_close'):,}")
    lines += model_counter_lines(counters)
    return "\n".join(lines)
