"""SenderState: JSON safety, exact round trip, and the 10 KiB bound under worst-case input."""

from __future__ import annotations

import json
import random

from streams.model.features import MessageFeatures
from streams.model.habits import SenderHabits
from streams.model.state import MAX_STATE_BYTES, SenderState, table_add


def _worst(rng: random.Random, i: int, t: float) -> dict:
    words = tuple(f"w{rng.randrange(10**9)}x" for _ in range(16))
    body = tuple(f"b{rng.randrange(10**9)}y" for _ in range(200))
    links = tuple(f"l{rng.randrange(10**9)}.example" for _ in range(16))
    rcpts = tuple(f"{'r' * 60}{rng.randrange(10**9)}@d{rng.randrange(10**9)}.example"
                  for _ in range(200))
    dkim = tuple(f"k{rng.randrange(10**9)}.example" for _ in range(4))
    return MessageFeatures("id-" + "x" * 500 + str(i), t, rcpts, words, body, links,
                           f"f{rng.randrange(10**9)}.example", dkim, bool(i % 2)).as_dict()


def test_state_size_bound_under_worst_case_input() -> None:
    rng = random.Random(0)
    model = SenderHabits()
    t, biggest = 1_000_000_000.0, 0
    for i in range(1500):
        # dense bursts (full pending queue) alternating with long gaps (tables fill up)
        t += rng.choice([1.0, 30.0, 3600.0 * 7, 86400.0 * 2])
        model.observe(_worst(rng, i, t)) if i % 3 else model.learn_one(_worst(rng, i, t))
        if i % 50 == 0:
            model.release()
        biggest = max(biggest, model.state.size_bytes())
        assert len(json.dumps(model.state.to_dict()).encode()) <= MAX_STATE_BYTES + 2048
    assert biggest <= MAX_STATE_BYTES, biggest


def test_round_trip_is_exact_and_json_safe() -> None:
    model = SenderHabits()
    for i in range(300):
        model.observe(MessageFeatures(str(i), 1e9 + i * 5000.3, (f"a{i % 9}@x.example",),
                                      ("hello", f"t{i % 5}"), (), (), "x.example", (),
                                      False).as_dict())
    data = model.state.to_dict()
    text = json.dumps(data)
    restored = SenderState.from_dict(json.loads(text))
    assert restored == model.state
    assert restored.to_dict() == data


def test_from_dict_ignores_unknown_and_defaults_missing() -> None:
    state = SenderState.from_dict({"seed": 2, "future_field": [1, 2]})
    assert state.seed == 2 and state.pending == []


def test_table_add_is_bounded_and_admits_newcomers() -> None:
    table: dict[str, float] = {}
    for i in range(10):
        table_add(table, f"k{i}", capacity=4, amount=5.0)
    table_add(table, "new", capacity=4)
    assert len(table) == 4 and "new" in table


def test_state_size_bound_with_every_part_full() -> None:
    """Fill the tables (long gaps), then the pending queue, the hourly lists and the id ring."""
    rng = random.Random(1)
    model = SenderHabits()
    t = 1_000_000_000.0
    for i in range(400):  # tables: learned one by one
        t += 2 * 86400.0
        model.observe(_worst(rng, i, t))
        model.release()
    for i in range(400, 460):  # one message in each of the next hours: everything pending
        t += 3599.0
        model.learn_one(_worst(rng, i, t))
        size = len(json.dumps(model.state.to_dict()).encode())  # default separators
        assert size <= MAX_STATE_BYTES, size
    state = model.state
    assert len(state.pending) == 12 and len(state.pending_hours) >= 24
    assert all(len(t) == c for t, c in zip(state.tables.values(), (80, 16, 48, 40, 20, 4, 4),
                                           strict=True))
