"""Pickling objects whose graph is deeper than Python's recursion limit.

`pickle.dumps` recurses once per level of nesting; River's Hoeffding tree regressor keeps,
per numeric input, an extended binary search tree (`EBSTNode`) that becomes a chain as long
as the number of distinct values when an input only increases (a date, a counter), and
pickling it raised `RecursionError`. Loading a pickle is not recursive (pickle's virtual
machine keeps its own stack), so only dumping needs room: `dumps` retries in a thread with a
large stack and a raised recursion limit. The bytes are an ordinary pickle: `pickle.loads`
reads them with River alone.

>>> import pickle
>>> chain = None
>>> for i in range(20_000):
...     chain = [i, chain]
>>> pickle.loads(dumps(chain))[0]
19999
"""

from __future__ import annotations

import pickle
import sys
import threading
from typing import Any

STACK_BYTES = 512 * 1024 * 1024  # virtual: only the pages a deep pickle touches are used
RECURSION_LIMIT = 1_000_000
_LOCK = threading.Lock()


def dumps(obj: Any, protocol: int = pickle.HIGHEST_PROTOCOL) -> bytes:
    """`pickle.dumps(obj)`, also for graphs deeper than the recursion limit.

    Raises what pickling raises otherwise (an unpicklable object: `PicklingError`,
    `TypeError`, `AttributeError`), or `RecursionError` when even the large stack is not enough.
    """
    try:
        return pickle.dumps(obj, protocol=protocol)
    except RecursionError:
        pass
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(pickle.dumps(obj, protocol=protocol))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            result.append(exc)

    with _LOCK:  # the stack size and the recursion limit are process-wide settings
        old_stack, old_limit = threading.stack_size(), sys.getrecursionlimit()
        try:
            threading.stack_size(STACK_BYTES)
            sys.setrecursionlimit(RECURSION_LIMIT)
            worker = threading.Thread(target=run, name="driftline-deep-pickle")
            worker.start()
            worker.join()
        finally:
            threading.stack_size(old_stack)
            sys.setrecursionlimit(old_limit)
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]
