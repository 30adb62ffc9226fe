"""Wall-clock pacing of a replay (pure: computes offsets, never sleeps).

The replay keeps the real gaps between messages, divided by a speed-up factor:

>>> from streams.replay.events import ReplayItem
>>> items = [ReplayItem("legit", b"k", b"v", t, "m", "a") for t in (100.0, 160.0, 400.0)]
>>> [offset for offset, _ in schedule(items, speedup=60)]
[0.0, 1.0, 5.0]
>>> [offset for offset, _ in schedule(items, speedup=0)]
[0.0, 0.0, 0.0]
>>> speedup_for(items, target_seconds=30)
10.0
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from streams.replay.events import ReplayItem


def schedule(items: Iterable[ReplayItem], speedup: float,
             max_gap: float | None = None) -> Iterator[tuple[float, ReplayItem]]:
    """Yield ``(offset, item)``: send ``item`` ``offset`` seconds after the replay started.

    ``speedup`` divides the replay's own time (``0`` sends everything at once). Offsets never
    decrease, so an item earlier than its predecessor is sent right after it. ``max_gap`` caps
    the wall-clock wait between two items (nights and weekends need not last long in a demo).
    """
    if speedup < 0:
        raise ValueError("speedup must be >= 0")
    if max_gap is not None and max_gap < 0:
        raise ValueError("max_gap must be >= 0")
    offset = 0.0
    previous: float | None = None
    for item in items:
        if speedup > 0 and previous is not None:
            gap = max(item.timestamp - previous, 0.0) / speedup
            offset += gap if max_gap is None else min(gap, max_gap)
        previous = item.timestamp if previous is None else max(previous, item.timestamp)
        yield offset, item


def speedup_for(items: Sequence[ReplayItem], target_seconds: float) -> float:
    """The speed-up that replays ``items`` in about ``target_seconds`` (0: as fast as possible).

    >>> speedup_for([], 10)
    0.0
    """
    if target_seconds <= 0:
        return 0.0
    if not items:
        return 0.0
    span = max(i.timestamp for i in items) - min(i.timestamp for i in items)
    return span / target_seconds if span > 0 else 0.0
