"""When each label of ADWIN's window arrived, in bounded memory, to date where its cut falls.

ADWIN (River's `river.drift.ADWIN`) says how many of the latest errors form the new regime
(`width` after a detection), not when that regime began. `LabelClock` keeps the event time
of every `stride`-th label; the stride doubles whenever `capacity` times are held, so memory
stays bounded however long ADWIN's window grows, and a cut is dated within `stride` labels
(exactly while fewer than `capacity` labels have been seen since the last reset).

>>> clock = LabelClock(capacity=4)
>>> for t in range(10):
...     clock.add(t * 1000)
>>> clock.stride, clock.began(kept=3)        # labels 7, 8, 9 are the new regime
(4, (4000, 8000))
>>> exact = LabelClock()
>>> for t in range(10):
...     exact.add(t * 1000)
>>> exact.began(kept=3), exact.began(kept=10)
((6000, 7000), None)
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right


class LabelClock:
    """Event times of the labels since the last `reset`, one every `stride` labels."""

    def __init__(self, capacity: int = 16_384) -> None:
        self.capacity = capacity
        self.stride = 1
        self.count = 0  # labels added since the last reset
        self.numbers = array("q")  # label numbers (0-based) whose time is held, increasing
        self.times = array("q")

    def add(self, time_ms: int) -> None:
        """One more label, at event time `time_ms`."""
        if self.count % self.stride == 0:
            self.numbers.append(self.count)
            self.times.append(time_ms)
            if len(self.numbers) > self.capacity:
                self._thin()
        self.count += 1

    def _thin(self) -> None:
        self.stride *= 2
        keep = [i for i, n in enumerate(self.numbers) if n % self.stride == 0]
        self.numbers = array("q", (self.numbers[i] for i in keep))
        self.times = array("q", (self.times[i] for i in keep))

    def began(self, kept: int) -> tuple[int, int] | None:
        """(time of the last label before the latest `kept`, time of the first of them); None
        when no label before them is known. With a stride above 1 the two are the nearest held
        times on either side of the cut."""
        first_new = self.count - kept
        if first_new <= 0 or not self.numbers:
            return None
        after = bisect_left(self.numbers, first_new)
        before = bisect_right(self.numbers, first_new - 1) - 1
        if before < 0 or after >= len(self.numbers):
            return None
        return self.times[before], self.times[after]

    def keep_last(self, kept: int) -> None:
        """Forget the labels before the latest `kept` except the one just before them."""
        cut = bisect_right(self.numbers, self.count - kept - 1) - 1
        if cut > 0:
            del self.numbers[:cut]
            del self.times[:cut]

    def reset(self) -> None:
        """Forget every label (a new champion's errors start a new ADWIN window)."""
        self.__init__(self.capacity)
