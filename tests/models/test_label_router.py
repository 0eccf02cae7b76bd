"""The label router: labels that come before their events wait, and expire once the watermark
has passed every label of their key (checked against a direct scan, with hypothesis)."""

from __future__ import annotations

import pickle

from hypothesis import given
from hypothesis import strategies as st

from features.models.label_router import LabelRouter

operations = st.lists(st.one_of(
    st.tuples(st.just("event"), st.sampled_from("abcdef"), st.integers(0, 10_000)),
    st.tuples(st.just("label"), st.sampled_from("abcdef"), st.integers(0, 10_000)),
    st.tuples(st.just("expire"), st.just(""), st.integers(0, 2_000)),
), max_size=80)


@given(operations)
def test_expiry_drops_exactly_the_keys_whose_labels_the_watermark_passed(ops: list[tuple[str, str, int]]) -> None:
    router = LabelRouter(ttl_ms=100_000)  # events are never forgotten here: only waiting labels expire
    waiting: dict[str, list[int]] = {}  # the direct reading: key -> label times, in arrival order
    known: set[str] = set()
    watermark = 0
    for op, key, value in ops:
        if op == "event":
            released = router.event(key, value, "seg")
            assert [t for t, _ in released] == waiting.pop(key, [])
            known.add(key)
        elif op == "label":
            assert router.label(key, value, None) == ((True, "seg") if key in known else (False, None))
            if key not in known:
                waiting.setdefault(key, []).append(value)
        else:
            watermark += value  # watermarks only grow
            gone = [k for k, times in waiting.items() if times[-1] < watermark]
            assert router.expire(watermark) == sum(len(waiting.pop(k)) for k in gone)
            router = pickle.loads(pickle.dumps(router))  # as a recovery snapshot restores it
    assert router.drop_all() == sum(len(times) for times in waiting.values())
    assert router.expire(10**9) == 0


batches = st.lists(st.tuples(st.sampled_from("abcdef"), st.integers(0, 10_000), st.sampled_from(["s1", "s2", None])),
                   max_size=30)


@given(st.lists(st.tuples(st.sampled_from("abcdef"), st.integers(0, 10_000)), max_size=20), batches)
def test_a_batch_of_events_is_its_events_one_at_a_time(labels: list[tuple[str, int]],
                                                        events: list[tuple[str, int, str | None]]) -> None:
    batch, single = LabelRouter(ttl_ms=1_000), LabelRouter(ttl_ms=1_000)
    for router in (batch, single):
        for key, t in labels:
            router.label(key, t, f"label {t}")
    keys, times, segments = ([e[i] for e in events] for i in range(3))
    released = batch.events(keys, times, segments)
    one_by_one = [(i, waiting) for i, (key, t, segment) in enumerate(events)
                  if (waiting := single.event(key, t, segment))]
    assert released == one_by_one
    assert list(batch.segments.items()) == list(single.segments.items()) and batch.waiting == single.waiting


@given(batches, st.lists(st.tuples(st.sampled_from("abcdefgh"), st.integers(0, 10_000)), max_size=30))
def test_a_batch_of_labels_is_its_labels_one_at_a_time(events: list[tuple[str, int, str | None]],
                                                        labels: list[tuple[str, int]]) -> None:
    batch, single = LabelRouter(ttl_ms=1_000), LabelRouter(ttl_ms=1_000)
    for router in (batch, single):
        for key, t, segment in events:
            router.event(key, t, segment)
    found = batch.labels([key for key, _ in labels], [t for _, t in labels], [f"label {t}" for _, t in labels])
    one_by_one = [(i, single.segments[key][0], segment) for i, (key, t) in enumerate(labels)
                  for known, segment in [single.label(key, t, f"label {t}")] if known]
    assert found == one_by_one
    assert batch.waiting == single.waiting and sorted(batch.due) == sorted(single.due)
