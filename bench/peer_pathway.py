"""Pathway peer for bench_features.py: the shared tumbling subset, null sink.

Per `area`, tumbling 1-minute windows on event time `ts` (epoch ms): count + mean(price) +
max(price). Behavior: `pw.temporal.exactly_once_behavior(shift=10 s)`, i.e. each window is
emitted once, when the operator's event time (the largest `ts` it has seen, over all areas)
reaches window end + 10 s; rows arriving after that for the window are dropped.

Input: Pathway's own Kafka connector, `pw.io.kafka.read(format="json", schema=...)`, from
the beginning of the topic, one worker (PATHWAY_THREADS=1, like the other cases).

Stopping. The connector's bounded `mode="static"` cannot be used on the local broker: it
reads up to the high watermarks from ListOffsets(latest) taken at start, which Tansu 0.6
answers with stale offsets (see dataflows/kafka/io.py), so it silently ends after 70-90% of
the topic. So the read is `mode="streaming"`, and a one-row running count of the input rows
(`pw.io.subscribe`, one callback per engine batch, not per row) tells when all `events`
rows were read. Then, to flush the windows still open, as Bytewax does at end of input, a
tiny `pw.io.python` source emits one sentinel row with a far-future `ts` (its own area,
never emitted), which closes every open window; once the engine has finished that batch
the run is stopped by raising from a subscribe callback (Pathway has no stop call).

Used as `from peer_pathway import case_pathway` with bench/ on sys.path. Prints nothing
to stdout (run_case parses the last stdout line as the result); Pathway logs to stderr.
"""

from __future__ import annotations

import os
import threading
import time as _time

_FLUSH_AREA = "\x00flush"
_FLUSH_TS = 4_102_444_800_000  # 2100-01-01: past every window of the workload


class _Stop(Exception):
    """Raised from a subscribe callback to end the (streaming) run."""


def case_pathway(bootstrap: str, topic: str, events: int) -> dict:
    os.environ.setdefault("PATHWAY_THREADS", "1")  # one worker, like the other cases
    import pathway as pw

    class Ride(pw.Schema):
        ride_id: str
        area: str
        ts: int
        price: float
        distance_km: float
        payment: str

    all_read = threading.Event()
    finished = threading.Event()

    class FlushSubject(pw.io.python.ConnectorSubject):
        def run(self) -> None:
            while not all_read.wait(0.05):
                if finished.is_set():
                    return
            self.next(ride_id="flush", area=_FLUSH_AREA, ts=_FLUSH_TS, price=0.0, distance_km=0.0,
                      payment="")
            self.commit()
            finished.wait()

    rides = pw.io.kafka.read(
        {"bootstrap.servers": bootstrap, "group.id": f"bench-pathway-{os.getpid()}",
         "auto.offset.reset": "earliest", "enable.auto.commit": "false",
         # as case_quix: the local broker's group join is slow with the default timeouts
         "session.timeout.ms": "6000", "max.poll.interval.ms": "10000",
         # Pathway keeps one event time per operator (not per partition): cap the fetch
         # size so the reader interleaves the partitions (with the defaults the broker
         # hands over ~1 minute of one partition first and 40% of rows come in late)
         "fetch.max.bytes": "262144", "max.partition.fetch.bytes": "65536",
         "message.max.bytes": "262144"},  # librdkafka: fetch.max.bytes >= message.max.bytes
        topic=topic, schema=Ride, format="json", mode="streaming",
        autocommit_duration_ms=_COMMIT_MS, name="rides")
    flush = pw.io.python.read(FlushSubject(), schema=Ride, autocommit_duration_ms=10, name="flush")
    source = rides.concat_reindex(flush)

    windows = source.windowby(
        source.ts, window=pw.temporal.tumbling(duration=60_000), instance=source.area,
        behavior=pw.temporal.exactly_once_behavior(shift=10_000),
    ).reduce(
        area=pw.this._pw_instance,
        window_start=pw.this._pw_window_start,
        rides=pw.reducers.count(),
        mean_price=pw.reducers.avg(pw.this.price),
        max_price=pw.reducers.max(pw.this.price),
    )

    # Null sink: one-row running counts, one callback per engine batch.
    seen = rides.reduce(n=pw.reducers.count())
    out_rows = windows.reduce(n=pw.reducers.count(), rows=pw.reducers.sum(pw.this.rides))
    state: dict = {"seen": 0, "first": None, "first_rows": 0, "all_read": None, "outputs": 0,
                   "batches": 0, "windowed_rows": 0, "flush_time": None, "out_closed": -1, "done": None}

    def on_seen(key, row, time, is_addition):
        if not is_addition:
            return
        now = _now()
        if state["first"] is None:
            state["first"], state["first_rows"] = now, row["n"]
        state["batches"] += 1
        state["seen"] = row["n"]
        if row["n"] >= events and state["all_read"] is None:
            state["all_read"] = now
            all_read.set()

    def on_out(key, row, time, is_addition):
        if is_addition:
            state["outputs"], state["windowed_rows"] = row["n"], row["rows"]

    def maybe_stop():
        if state["flush_time"] is not None and state["out_closed"] >= state["flush_time"]:
            state["done"] = _now()
            raise _Stop()

    def on_out_time_end(time):
        state["out_closed"] = time
        maybe_stop()

    def on_flush(key, row, time, is_addition):
        if is_addition:
            state["flush_time"] = time
            state["flush_seen"] = _now()

    def on_flush_time_end(time):
        maybe_stop()

    pw.io.subscribe(seen, on_change=on_seen)
    pw.io.subscribe(out_rows, on_change=on_out, on_time_end=on_out_time_end)
    pw.io.subscribe(flush, on_change=on_flush, on_time_end=on_flush_time_end)

    started = _now()
    try:
        pw.run(monitoring_level=pw.MonitoringLevel.NONE, with_http_server=False, persistence_config=None)
    except _Stop:
        pass
    finally:
        finished.set()
    if state["done"] is None:
        raise RuntimeError(f"pathway run ended before the flush: {state}")
    raw = state["done"] - state["first"]
    # The clock starts at the first batch's callback, after that batch's rows were read:
    # extrapolate to the first row at the rate of the rest (conservative for Pathway).
    rest = state["seen"] - state["first_rows"]
    seconds = raw * state["seen"] / rest if rest > 0 else raw
    return {"events": state["seen"], "seconds": seconds, "outputs": state["outputs"],
            "seconds_from_first_batch": raw, "first_batch_rows": state["first_rows"],
            "flush_seconds": state["done"] - state["all_read"],
            "seconds_with_start": state["done"] - started, "batches": state["batches"],
            "late": state["seen"] - state["windowed_rows"],
            # from the last input batch to the sentinel reaching the engine: stop-mechanism
            # latency (mostly idle, up to a commit period), left in `seconds`
            "sentinel_latency_s": state["flush_seen"] - state["all_read"],
            "note": ("timed from its first input row (extrapolated from the first batch callback; "
                     "consumer-group join excluded) to the end of the end-of-input window flush; "
                     "exactly_once_behavior(shift=10s); seconds_with_start includes startup and join")}


_COMMIT_MS = 100
_now = _time.perf_counter
