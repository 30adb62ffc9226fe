"""Wall-clock pacing of the replay."""

from __future__ import annotations

import pytest

from streams.replay.events import ReplayItem, load_replay
from streams.replay.pacing import schedule, speedup_for


def item(t: float) -> ReplayItem:
    return ReplayItem("legit", b"k", b"{}", t, "m", "a")


def offsets(times: list[float], speedup: float, max_gap: float | None = None) -> list[float]:
    return [o for o, _ in schedule([item(t) for t in times], speedup, max_gap=max_gap)]


def test_real_gaps_divided_by_the_speedup() -> None:
    assert offsets([1000.0, 1010.0, 1030.0], 10) == [0.0, 1.0, 3.0]
    assert offsets([1000.0, 1010.0, 1030.0], 1) == [0.0, 10.0, 30.0]


def test_zero_speedup_sends_everything_at_once() -> None:
    assert offsets([1.0, 50.0, 5000.0], 0) == [0.0, 0.0, 0.0]


def test_offsets_never_decrease_for_out_of_order_items() -> None:
    assert offsets([100.0, 90.0, 110.0], 1) == [0.0, 0.0, 10.0]


def test_max_gap_caps_quiet_periods() -> None:
    assert offsets([0.0, 86_400.0, 86_430.0], 1, max_gap=60) == [0.0, 60.0, 90.0]
    assert offsets([0.0, 86_400.0, 86_430.0], 10, max_gap=5) == [0.0, 5.0, 8.0]


def test_items_are_yielded_in_order_and_untouched() -> None:
    items = [item(t) for t in (3.0, 4.0)]
    assert [i for _, i in schedule(items, 2)] == items
    assert list(schedule([], 2)) == []


@pytest.mark.parametrize("bad", [{"speedup": -1.0}, {"speedup": 1.0, "max_gap": -1.0}])
def test_invalid_arguments(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        list(schedule([item(0.0)], **bad))


def test_speedup_for_fits_the_target_duration() -> None:
    items = [item(t) for t in (0.0, 500.0, 1000.0)]
    speedup = speedup_for(items, 100)
    assert speedup == 10.0
    assert max(o for o, _ in schedule(items, speedup)) == pytest.approx(100)
    assert speedup_for(items, 0) == 0.0
    assert speedup_for([item(5.0)], 10) == 0.0


def test_the_small_replay_fits_a_minute() -> None:
    items = load_replay(max_messages=300)
    speedup = speedup_for(items, 60)
    last = max(o for o, _ in schedule(items, speedup))
    assert last == pytest.approx(60, rel=1e-6)
