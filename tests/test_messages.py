"""Feature messages rendered column by column equal the per-message rendering."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import features.messages
import features.windows.panes
from features.messages import encode, feature_message, feature_messages


@pytest.fixture(params=["c", "python"])
def joiner(request, monkeypatch):
    """Each test runs with the compiled row joiner and with the Python one (its fallback)."""
    if request.param == "python":
        monkeypatch.setattr(features.messages, "_rows", None)
    return request.param


def test_the_compiled_modules_are_built():
    """Without a C compiler the install goes on in Python; where tests run, one is expected."""
    assert features.messages._rows is not None, (
        "features/_rows.c was not compiled: reinstall with a C compiler (pip install -e .), "
        "or feature messages are joined in Python, several times slower")
    assert features.windows.panes._fold is not None, (
        "features/windows/_fold.c was not compiled: reinstall with a C compiler (pip install -e .)")

text = st.text(max_size=8)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**60, 2**60), st.floats(allow_nan=False, allow_infinity=False),
                    text)


times = st.integers(-2**40, 2**45)
windows = st.one_of(  # a window per row (last-N, sessions), or a few shared by many rows (tumbling, hopping)
    st.lists(st.tuples(times, times), max_size=6),
    st.lists(st.tuples(times, times), min_size=1, max_size=3).flatmap(
        lambda few: st.lists(st.sampled_from(few), min_size=8, max_size=40)))


# Values the joiner must split exactly out of orjson's column text: strings with commas,
# brackets, quotes and escapes, and nested lists and objects.
nested = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(text, inner, max_size=3)), max_leaves=6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(windows.flatmap(lambda ws: st.tuples(*[st.tuples(text, st.just(s), st.just(e), st.integers(0, 10**6))
                                              for s, e in ws]).map(list)),
       st.dictionaries(st.text(min_size=1, max_size=5), st.booleans(), max_size=4), st.data())
def test_columnar_rendering_equals_per_message_rendering(joiner, rows, kinds, data):
    names = list(kinds)
    values = {n: [data.draw(nested if kinds[n] else st.one_of(st.none(), st.floats(0, 1e6), st.integers(-2**63, 2**63 - 1)))
                  for _ in rows] for n in names}
    statics = {e: {"static_" + e[:3]: 1.5} for e, *_ in rows[:1]}
    columns = [[r[k] for r in rows] for k in (1, 2, 3)]
    if data.draw(st.booleans()):  # the flow passes the engine's arrays
        columns = [np.array(c, np.int64) for c in columns]
    starts, ends, counts = columns
    rendered = feature_messages("set/a\"b", [r[0] for r in rows], starts, ends, values, counts, 1_767_225_600_000,
                                statics)
    for i, (entity, start, end, count) in enumerate(rows):
        row_values = {n: values[n][i] for n in names} | statics.get(entity, {})
        expected = encode(feature_message("set/a\"b", entity, start, end, row_values, count, "final", None,
                                          1_767_225_600_000))
        assert orjson.loads(rendered[i]) == orjson.loads(expected)
        assert rendered[i] == expected  # byte for byte, key order included


@pytest.mark.parametrize("start_ms", [-2**45, -30_610_224_000_001, -30_610_224_000_000, 253_402_300_799_999])
def test_windows_at_the_edges_of_four_digit_years_render_as_python_writes_them(joiner, start_ms):
    """Before the year 1000 the compiled joiner defers to Python's dates (strftime writes '855')."""
    rendered = feature_messages("s", ["a", "b"], [start_ms, 0], [start_ms, 60_000], {"n": [1, 2]}, [1, 2], 61_000)
    assert rendered[0] == encode(feature_message("s", "a", start_ms, start_ms, {"n": 1}, 1, "final", None, 61_000))


def test_the_row_joiner_refuses_parts_that_do_not_fit():
    rows = features.messages._rows
    if rows is None:
        pytest.skip("features/_rows.c is not built (test_the_compiled_row_joiner_is_built says why)")
    assert rows.render(2, [b"<", (rows.TOKENS, b'["a,]",{"b":[1,2]}]'), b">"]) == [b'<"a,]">', b'<{"b":[1,2]}>']
    assert rows.render(1, [(rows.INT, np.array([-2**63], np.int64)), (rows.ISO, np.array([-1], np.int64))]) == [
        b"-92233720368547758081969-12-31T23:59:59.999Z"]
    with pytest.raises(ValueError, match="3 elements"):
        rows.render(3, [(rows.TOKENS, b"[1,2]")])
    with pytest.raises(ValueError, match="JSON strings"):
        rows.render(1, [(rows.INNER, b"[1]")])
    with pytest.raises(TypeError, match="int64"):
        rows.render(1, [(rows.INT, np.array([1], np.int32))])
    with pytest.raises(ValueError, match="list of 2 bytes"):
        rows.render(2, [(rows.RAW, [b"x"])])
