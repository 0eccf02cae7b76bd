"""Feature messages rendered column by column equal the per-message rendering."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from features.messages import encode, feature_message, feature_messages

text = st.text(max_size=8)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**60, 2**60), st.floats(allow_nan=False, allow_infinity=False),
                    text)


times = st.integers(-2**40, 2**45)
windows = st.one_of(  # a window per row (last-N, sessions), or a few shared by many rows (tumbling, hopping)
    st.lists(st.tuples(times, times), max_size=6),
    st.lists(st.tuples(times, times), min_size=1, max_size=3).flatmap(
        lambda few: st.lists(st.sampled_from(few), min_size=8, max_size=40)))


@settings(max_examples=300, deadline=None)
@given(windows.flatmap(lambda ws: st.tuples(*[st.tuples(text, st.just(s), st.just(e), st.integers(0, 10**6))
                                              for s, e in ws]).map(list)),
       st.dictionaries(st.text(min_size=1, max_size=5), st.booleans(), max_size=4), st.data())
def test_columnar_rendering_equals_per_message_rendering(rows, kinds, data):
    names = list(kinds)
    values = {n: [data.draw(scalars if kinds[n] else st.one_of(st.none(), st.floats(0, 1e6), st.integers(-2**63, 2**63 - 1)))
                  for _ in rows] for n in names}
    statics = {e: {"static_" + e[:3]: 1.5} for e, *_ in rows[:1]}
    rendered = feature_messages("set/a\"b", [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], values,
                                [r[3] for r in rows], 1_767_225_600_000, statics)
    for i, (entity, start, end, count) in enumerate(rows):
        row_values = {n: values[n][i] for n in names} | statics.get(entity, {})
        expected = encode(feature_message("set/a\"b", entity, start, end, row_values, count, "final", None,
                                          1_767_225_600_000))
        assert orjson.loads(rendered[i]) == orjson.loads(expected)
        assert rendered[i] == expected  # byte for byte, key order included
