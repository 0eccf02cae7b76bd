"""`lex_order` is `np.lexsort` by entity, time and arrival, packed or not."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from features.windows.last_n import lex_order


@given(st.lists(st.tuples(st.integers(0, 2**20), st.integers(-2**40, 2**40)), max_size=50), st.integers(0, 2**40),
       st.randoms())
def test_lex_order_is_lexsort(rows: list[tuple[int, int]], first_arrival: int, random) -> None:
    arrivals = list(range(first_arrival, first_arrival + len(rows)))
    random.shuffle(arrivals)  # distinct, in any order (the log is not kept in arrival order)
    e = np.array([r[0] for r in rows], np.int64)
    t = np.array([r[1] for r in rows], np.int64)
    a = np.array(arrivals, np.int64)
    assert lex_order(e, t, a).tolist() == np.lexsort((a, t, e)).tolist()
