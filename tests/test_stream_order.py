"""OrderedRelease: the released sequence depends only on the items, not on how senders interleave."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from features.stream_order import OrderedRelease

# Per sender: (time delta, rank, key) steps; a sender's times never go below its last watermark.
senders = st.lists(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 1), st.sampled_from("abc")),
                            min_size=1, max_size=15), min_size=1, max_size=4)


def batches(steps: list[tuple[int, int, str]], name: str) -> list[tuple[str, list, int]]:
    """The sender's messages: (sender, [(time, rank, key, item)], watermark), one item each."""
    out, t = [], 0
    for n, (delta, rank, key) in enumerate(steps):
        t += delta
        out.append((name, [(t, rank, key, (t, rank, key, name, n))], t))  # nothing later is earlier than t
    return out


@given(senders, st.randoms(use_true_random=False))
def test_any_interleaving_releases_the_same_sequence(all_steps, rng) -> None:
    streams = [batches(steps, f"s{i}") for i, steps in enumerate(all_steps)]

    def run(interleaving: list[tuple[str, list, int]], max_runs: int = OrderedRelease.MAX_RUNS) -> list:
        order = OrderedRelease(senders=len(streams))
        order.MAX_RUNS = max_runs
        released = []
        for sender, items, watermark in interleaving:
            order.push(*(list(column) for column in zip(*items)) if items else ([], [], []))
            order.mark(sender, watermark)
            released += order.release()
        return [entry[4] for entry in released + order.flush()]

    in_turn = [m for stream in streams for m in stream]
    queues = [list(s) for s in streams]
    shuffled = []
    while any(queues):  # a random interleaving that keeps each sender's own order
        queue = rng.choice([q for q in queues if q])
        shuffled.append(queue.pop(0))
    expected = sorted(item for _s, items, _w in in_turn for *_, item in items)
    first = run(in_turn)
    assert [i[:3] for i in first] == [i[:3] for i in expected]
    assert [i[:3] for i in run(shuffled)] == [i[:3] for i in first]
    assert run(shuffled, max_runs=1) == run(shuffled)  # merging the waiting runs changes nothing
