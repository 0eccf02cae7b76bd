"""`worker_of` predicts where a running Bytewax puts each key of a stateful step."""

from __future__ import annotations

import threading

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.run import cli_main
from bytewax.testing import TestingSource

from dataflows.flows.worker_routing import key_on_worker, worker_of

from dataflows.flows.features import _SHARD_KEYS

KEYS = [f"k{i}" for i in range(60)] + ["cancel/w0", "m/j0", "m/s3", "a" * 20, "é-ü", key_on_worker("x", 2, 3),
                                       *_SHARD_KEYS]


class _Echo(StatefulBatchLogic):
    def on_batch(self, values):
        return values, StatefulBatchLogic.RETAIN

    def snapshot(self):
        return None


class _Seen(DynamicSink):
    def __init__(self) -> None:
        self.seen: dict[str, int] = {}
        self.lock = threading.Lock()

    def build(self, step_id, worker_index, worker_count):
        sink = self

        class Part(StatelessSinkPartition):
            def write_batch(self, items):
                with sink.lock:
                    for key, _ in items:
                        sink.seen[key] = worker_index

        return Part()


@pytest.mark.parametrize("workers", [2, 3, 4])
def test_worker_of_matches_bytewax(workers: int) -> None:
    flow = Dataflow("routing")
    keyed = op.input("in", flow, TestingSource([(k, k) for k in KEYS]))
    sink = _Seen()
    op.output("out", op.stateful_batch("echo", keyed, lambda _resume: _Echo()), sink)
    cli_main(flow, workers_per_process=workers)
    assert sink.seen == {k: worker_of(k, workers) for k in KEYS}


def test_key_on_worker_lands_and_is_stable() -> None:
    for workers in (1, 2, 3, 5, 8):
        keys = [key_on_worker(f"m/w{w}", w, workers) for w in range(workers)]
        assert [worker_of(k, workers) for k in keys] == list(range(workers))
        assert keys == [key_on_worker(f"m/w{w}", w, workers) for w in range(workers)]


def test_feature_shards_are_spread_evenly_on_any_worker_count_up_to_their_number() -> None:
    """The features flow's shard i is on worker i % workers (the keys are fixed: a recovery
    directory resumes on another worker count with its shards still spread evenly)."""
    for workers in range(1, len(_SHARD_KEYS) + 1):
        assert [worker_of(k, workers) for k in _SHARD_KEYS] == [i % workers for i in range(len(_SHARD_KEYS))]
