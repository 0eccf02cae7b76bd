"""HLL distinct counts for the summaries: bounds, merge, and a fast batch update of doubles.

The sketch is Apache DataSketches' `hll_sketch` (HLL_4). Its Python binding has no array
update, and one Python call per value (~100 ns) would cap a numeric summary far below the
throughput of the rest of its batch path. `HllBatchFeeder` closes that gap without touching
the sketch's internals: it computes in numpy the same hash as DataSketches (MurmurHash3_x64_128
of the 8 bytes of the double, seed 9001, -0.0 folded into 0.0) and from it each value's
*coupon* (a 26-bit address and a 6-bit register value), then calls `update` only for values
that can change the sketch. The others are provably no-ops in the sketch's own code:

- a coupon the sketch has already been given is a no-op in every mode (LIST and SET keep
  coupons in a set; HLL keeps per-register maxima);
- once the sketch is in HLL mode, a coupon whose value does not exceed the register it maps
  to is a no-op (registers only rise, and the HIP estimator moves only when one does).

The feeder keeps *lower bounds* of what the sketch holds (a coupon seen per register slot,
and each register's maximum), so anything else that updates the sketch (a per-value
`update`, or no feeder history at all) only makes it skip less, never wrongly. The resulting
sketch is therefore bit-identical to one fed every value one call at a time, in the same
order; `tests/summaries/test_numeric_summary.py` checks this. Past the first few thousand values of a
high-cardinality column, only about k * ln(n2 / n1) of the values between the n1-th and the
n2-th reach the sketch (k registers); a low-cardinality column reaches it about once per
distinct value and block of 32768 values.

>>> h = hll_sketch(12, HLL_TYPE)
>>> HllBatchFeeder(12).feed(h, np.arange(1000.0))
>>> d = hll_distinct(h); d.lower <= 1000 <= d.upper
True
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
from datasketches import hll_sketch, hll_union, tgt_hll_type

# HLL_4 serialises lg_k=12 in ~2.1 KB (HLL_8: ~4.1 KB) at the same accuracy, which keeps a
# numeric summary under 8 KB; updates cost about the same.
HLL_TYPE = tgt_hll_type.HLL_4
# Standard deviations for the reported bounds: 2 gives ~95% confidence.
HLL_STD_DEVS = 2

# MurmurHash3_x64_128 constants, and DataSketches' default seed (common/include/common_defs.hpp).
_C1 = np.uint64(0x87C37B91114253D5)
_C2 = np.uint64(0x4CF5AD432745937F)
_F1 = np.uint64(0xFF51AFD7ED558CCD)
_F2 = np.uint64(0xC4CEB9FE1A85EC53)
_SEED = 9001
_KEY_LEN = 8
_H2_START = np.uint64(_SEED ^ _KEY_LEN)  # h2 after the tail and the length xor (no blocks)
_H1_XOR = np.uint64(_SEED ^ _KEY_LEN)
_ADDR_MASK = np.uint64((1 << 26) - 1)  # HllUtil KEY_MASK_26
_ALL_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)
_HLL_MODE = 2  # low two bits of byte 7 of a serialized sketch: 0 LIST, 1 SET, 2 HLL
_BLOCK = 1 << 15


@dataclass(frozen=True)
class DistinctCount:
    """HLL distinct-count estimate with lower and upper bounds at `std_devs` deviations.

    >>> DistinctCount(10.0, 10.0, 10.0, 2).estimate
    10.0
    """

    estimate: float
    lower: float
    upper: float
    std_devs: int


def hll_distinct(sketch: hll_sketch) -> DistinctCount:
    """The estimate and ~95% bounds of an HLL sketch.

    >>> h = hll_sketch(12); h.update(1.0); h.update(2.0)
    >>> round(hll_distinct(h).estimate, 6)
    2.0
    """
    return DistinctCount(sketch.get_estimate(), sketch.get_lower_bound(HLL_STD_DEVS),
                         sketch.get_upper_bound(HLL_STD_DEVS), HLL_STD_DEVS)


def hll_merge(a: hll_sketch, b: hll_sketch, lg_k: int) -> hll_sketch:
    """A new HLL sketch of the union of two (inputs untouched).

    >>> a = hll_sketch(12); a.update("x"); b = hll_sketch(12); b.update("y")
    >>> round(hll_merge(a, b, 12).get_estimate(), 6)
    2.0
    """
    union = hll_union(lg_k)
    union.update(a)
    union.update(b)
    return union.get_result(HLL_TYPE)


def hll_bytes(sketch: hll_sketch) -> bytes:
    """The sketch's compact serialisation in a canonical form, so that equal sketches give
    equal bytes and bytes -> sketch -> bytes is exact.

    DataSketches writes the coupons of the LIST and SET modes, and the exception (aux)
    entries of HLL_4 registers, in the order of its internal hash table, which a
    deserialised copy may lay out differently. Those parts are lists of u32 entries that
    `deserialize` re-inserts one by one, in any order: sorting them is the canonical form.

    >>> h = hll_sketch(12, HLL_TYPE); h.update(1.0)
    >>> hll_sketch.deserialize(hll_bytes(h)).get_estimate() == h.get_estimate()
    True
    """
    data = sketch.serialize_compact()
    start = data[0] * 4  # preamble length: byte 0 holds it in 32-bit words
    if data[7] & 3 == _HLL_MODE:
        start += (1 << data[3]) // 2  # HLL_4 registers, 4 bits each (byte 3 is lg_k)
    if len(data) - start < 8:  # fewer than two entries: nothing to order
        return data
    entries = np.sort(np.frombuffer(data, dtype="<u4", offset=start))
    return data[:start] + entries.tobytes()


def _fmix64(k: np.ndarray, tmp: np.ndarray) -> None:
    """MurmurHash3's 64-bit finaliser, in place (uint64 arithmetic wraps like C's)."""
    np.right_shift(k, 33, out=tmp)
    k ^= tmp
    k *= _F1
    np.right_shift(k, 33, out=tmp)
    k ^= tmp
    k *= _F2
    np.right_shift(k, 33, out=tmp)
    k ^= tmp


def hash_doubles(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(h1, h2) of MurmurHash3_x64_128 over each double's 8 bytes, as DataSketches hashes them.

    >>> h1, h2 = hash_doubles(np.array([0.0, -0.0]))
    >>> bool(h1[0] == h1[1]) and bool(h2[0] == h2[1])
    True
    """
    # Adding 0.0 turns -0.0 into 0.0, the canonical form hll_sketch::update(double) hashes.
    h1 = np.add(x, 0.0, dtype=np.float64).view(np.uint64)
    tmp = np.empty_like(h1)
    # The key is shorter than one 16-byte block, so only the tail step runs:
    # k1 = key * c1, rotl(k1, 31), * c2; h1 = seed ^ k1 ^ len; h2 = seed ^ len.
    h1 *= _C1
    np.right_shift(h1, 33, out=tmp)
    h1 <<= np.uint64(31)
    h1 |= tmp
    h1 *= _C2
    h1 ^= _H1_XOR
    h1 += _H2_START  # h1 += h2
    h2 = h1 + _H2_START  # h2 += h1
    _fmix64(h1, tmp)
    _fmix64(h2, tmp)
    h1 += h2
    h2 += h1
    return h1, h2


def register_values(h2: np.ndarray) -> np.ndarray:
    """HLL register values from h2: 1 + its leading zero bits, capped at 63 (HllUtil::coupon).

    >>> register_values(np.array([2**63, 1, 0], dtype=np.uint64)).tolist()
    [1, 63, 63]
    """
    # Leading zeros from the float exponent of the top 53 bits, which convert exactly.
    _, bits = np.frexp((h2 >> np.uint64(11)).astype(np.float64))
    value = np.subtract(54, bits, dtype=np.int32)  # 1 + (53 - bit length of h2 >> 11)
    if np.count_nonzero(bits) < bits.size:  # h2 < 2**11: probability 2**-53 per value
        zero = np.flatnonzero(bits == 0)
        low = (h2[zero] & np.uint64(0x7FF)).astype(np.float64)
        value[zero] = np.minimum(64 - np.frexp(low)[1], 62) + 1
    return value.astype(np.uint8)


def coupons(x: np.ndarray) -> np.ndarray:
    """The 32-bit coupon hll_sketch derives from each double: register value << 26 | address.

    >>> hex(int(coupons(np.array([1.5]))[0]))  # as the sketch stores it for 1.5
    '0x142a8222'
    """
    h1, h2 = hash_doubles(x)
    return _coupon(h1, register_values(h2))


def _coupon(h1: np.ndarray, value: np.ndarray) -> np.ndarray:
    return (value.astype(np.uint32) << np.uint32(26)) | (h1 & _ADDR_MASK).astype(np.uint32)


def _in_hll_mode(sketch: hll_sketch) -> bool:
    return (sketch.serialize_compact()[7] & 3) == _HLL_MODE


class HllBatchFeeder:
    """Feeds numpy batches of doubles to one `hll_sketch`, skipping provable no-op updates.

    Holds lower bounds of the sketch's content (see the module docstring): use one feeder
    per sketch, for the sketch's whole life. Not serialised: a fresh feeder is correct for
    any sketch, it only skips less until it has seen some values.

    >>> h = hll_sketch(12, HLL_TYPE); feeder = HllBatchFeeder(12)
    >>> feeder.feed(h, np.array([3.0, 3.0, 4.0]))
    >>> ref = hll_sketch(12, HLL_TYPE); ref.update(3.0); ref.update(4.0)
    >>> h.serialize_compact() == ref.serialize_compact()
    True
    """

    __slots__ = ("lg_k", "below", "seen", "dense")

    def __init__(self, lg_k: int) -> None:
        self.lg_k = lg_k
        # Per register slot: h2 values at or below this have more leading zeros than the
        # largest register value fed to the slot, i.e. can raise it (all ones: nothing fed).
        self.below = np.full(1 << lg_k, _ALL_ONES, dtype=np.uint64)
        self.seen = np.zeros(1 << lg_k, dtype=np.uint32)  # a coupon fed per slot (0: none)
        self.dense = False  # the sketch is known to be in HLL mode (it never leaves it)

    def feed(self, sketch: hll_sketch, x: np.ndarray) -> None:
        """Update `sketch` with every value of the float64 array `x`, in order."""
        slot_mask = np.uint64((1 << self.lg_k) - 1)
        # Blocks keep the hash's temporaries in cache, and what one block feeds tightens
        # the filter for the next.
        for pos in range(0, x.size, _BLOCK):
            xb = x[pos:pos + _BLOCK]
            h1, h2 = hash_doubles(xb)
            slot = (h1 & slot_mask).view(np.int64)
            if self.dense:
                idx = np.flatnonzero(h2 <= self.below[slot])
                if idx.size == 0:
                    continue
                value = register_values(h2[idx])
            else:
                values = register_values(h2)
                coupon = _coupon(h1, values)
                idx = np.flatnonzero(self.seen[slot] != coupon)
                if idx.size == 0:
                    continue
                value = values[idx]
                self.seen[slot[idx]] = coupon[idx]
            deque(map(sketch.update, xb[idx].tolist()), maxlen=0)
            np.minimum.at(self.below, slot[idx], _ALL_ONES >> value.astype(np.uint64))
            if not self.dense:
                self.dense = _in_hll_mode(sketch)
