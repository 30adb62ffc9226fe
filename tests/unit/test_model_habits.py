"""SenderHabits behaviour: cold start, bursts, delayed learning, idempotency, determinism."""

from __future__ import annotations

import copy
import json
from collections.abc import Hashable
from typing import Any

import pytest
from river import base

from streams.model.features import MessageFeatures
from streams.model.habits import SenderHabits
from streams.model.state import SenderState

T0 = 1_000_000_000.0
DAY = 86400.0


def msg(i: int | str, t: float, to: list[str], subject: str = "weekly desk report",
        *, body: str = "", links: tuple[str, ...] = (), dkim: tuple[str, ...] = ("shop.example",),
        dmarc: bool = True) -> dict[Hashable, Any]:
    return MessageFeatures(str(i), t, tuple(to), tuple(subject.split()), tuple(body.split()),
                           links, "shop.example", dkim, dmarc).as_dict()


COLLEAGUES = [f"c{i}@shop.example" for i in range(6)]


def warmed(days: int = 90, **params: Any) -> tuple[SenderHabits, float]:
    """A sender writing 1–3 messages a day to a few colleagues for ``days`` days."""
    model = SenderHabits(**params)
    for d in range(days):
        for k in range(1 + d % 3):
            t = T0 + d * DAY + k * 1800
            to = [COLLEAGUES[(d + k) % 6], COLLEAGUES[(d * 7 + k) % 6]]
            assert model.observe(msg(f"w{d}-{k}", t, to)).action == "deliver"
    return model, T0 + days * DAY


def burst(t: float, n: int = 30, gap: float = 20.0, same_domain: bool = False) -> list[dict]:
    dom = "shop.example" if same_domain else "far.example"
    return [msg(f"b{i}", t + i * gap, [f"stranger{i}@{dom}", f"other{i}@{dom}"],
                "verify your account now", body="login to confirm your password",
                links=("login-verify.example",)) for i in range(n)]


def first_hold(model: SenderHabits, messages: list[dict]) -> int | None:
    for i, x in enumerate(messages):
        if model.observe(x).action == "hold":
            model.forget_pending()
            return i
    return None


def test_is_a_river_anomaly_detector() -> None:
    model = SenderHabits()
    assert isinstance(model, base.AnomalyDetector)
    assert model.learn_one(msg(1, T0, ["a@b.example"])) is None  # type: ignore[func-returns-value]
    assert isinstance(model.clone(), SenderHabits)


def test_cold_start_is_not_held() -> None:
    model = SenderHabits()
    actions = [model.observe(msg(i, T0 + i * 600, [f"new{i}@client{i % 4}.example"],
                                 f"offer number {i} for you")).action for i in range(40)]
    assert "hold" not in actions
    assert actions[0] == "deliver"


def test_cold_start_is_not_a_blind_spot() -> None:
    model = SenderHabits()
    held = first_hold(model, burst(T0, n=200, gap=2.0))
    assert held is not None and held < 60


@pytest.mark.parametrize("same_domain", [False, True])
def test_warmed_sender_burst_to_strangers_held_fast(same_domain: bool) -> None:
    model, t = warmed()
    held = first_hold(model, burst(t + 3600, same_domain=same_domain))
    assert held is not None and held < 9


def test_burst_held_without_recipient_domains_or_content() -> None:
    model, t = warmed(recipient_domain_weight=0.0, subject_weight=0.0, body_weight=0.0,
                      link_weight=0.0)
    held = first_hold(model, burst(t + 3600))
    assert held is not None and held < 9


def test_evidence_accumulates_over_the_burst() -> None:
    model, t = warmed(rate_weight=0.0)
    scores = [model.observe(x).score for x in burst(t + 3600, n=4)]
    assert scores == sorted(scores) and scores[-1] > scores[0] + 3


def test_warmed_sender_normal_day_delivers() -> None:
    model, t = warmed()
    a = model.observe(msg("n1", t + 3600, COLLEAGUES[:2]))
    assert a.action == "deliver" and a.score < model.alert_threshold


def test_posture_drift_is_a_signal() -> None:
    model, t = warmed()
    normal = model.score_one(msg("p0", t + 3600, COLLEAGUES[:1]))
    drift = model.explain_one(msg("p1", t + 3600, COLLEAGUES[:1], dkim=("evil.example",),
                                  dmarc=False))
    by_name = {f.name: f for f in drift.features}
    assert by_name["dkim_domain_change"].contribution > 1.0
    assert by_name["dmarc_lost"].contribution > 1.0
    assert drift.total() > normal + 2.0


def test_evidence_structure_adds_up() -> None:
    model, t = warmed()
    model.observe(burst(t + 3600)[0])
    a = model.observe(burst(t + 3600)[1])
    assert a.score == pytest.approx(a.evidence.total(), abs=1e-3)
    d = json.loads(json.dumps(a.to_dict()))
    assert d["action"] == a.action and d["evidence"]["new_link_domains"] == ["login-verify.example"]
    assert "far.example" in d["evidence"]["new_recipient_domains"]
    assert {"verify", "account"} & set(d["evidence"]["top_unusual_tokens"])


def test_observe_is_idempotent_per_message_id() -> None:
    model, t = warmed(30)
    x = msg("dup", t + 60, ["someone@new.example"])
    first = model.observe(x)
    after_first = model.state.to_dict()
    again = model.observe(copy.deepcopy(x))
    assert model.state.to_dict() == after_first
    assert again.action == first.action
    model.learn_one(x)
    assert model.state.to_dict() == after_first


def test_learn_one_is_idempotent_per_message_id() -> None:
    a, b = SenderHabits(), SenderHabits()
    for i in range(50):
        x = msg(i, T0 + i * 7200, COLLEAGUES[i % 3: i % 3 + 1])
        a.learn_one(x)
        b.learn_one(x)
        b.learn_one(x)  # redelivered
    assert a.state.to_dict() == b.state.to_dict()


def test_learning_is_delayed() -> None:
    model = SenderHabits()
    model.observe(msg(1, T0, ["x@a.example"]))
    assert model.state.learned == 0 and len(model.state.pending) == 1
    model.observe(msg(2, T0 + DAY - 10, ["y@a.example"]))
    assert model.state.learned == 0
    model.observe(msg(3, T0 + DAY + 10, ["z@a.example"]))
    assert model.state.learned == 1 and len(model.state.pending) == 2


def test_held_traffic_is_never_learned() -> None:
    model, t = warmed()
    before = model.state.copy()
    attack = burst(t + 3600)
    held_at = first_hold(model, attack)
    assert held_at is not None
    for x in attack[held_at + 1:]:  # the rest of the burst, still held
        assert model.observe(x).action == "hold"
    assert model.state.pending == [] and model.state.held
    model.learn_one(msg("while-held", t + 7200, ["w@far.example"]))
    assert model.state.pending == []
    # Two days later nothing of the burst is in the learned tables or the rate moments.
    model.release()
    model.observe(msg("later", t + 3 * DAY, COLLEAGUES[:1]))
    for channel in ("rcpt", "rdom", "link"):
        learned = set(model.state.tables.get(channel, {}))
        assert not learned - set(before.tables.get(channel, {})) - _keys_of(model, channel)
    assert model.state.rate["h"][4] <= before.rate["h"][4] + 1e-9


def _keys_of(model: SenderHabits, channel: str) -> set[str]:
    from streams.model.profile import make_view

    return set(make_view(msg("later", 0, COLLEAGUES[:1]), model.state.seed).keys[channel])


def test_forget_pending_drops_queue() -> None:
    model = SenderHabits()
    for i in range(5):
        model.observe(msg(i, T0 + i, ["a@b.example"]))
    model.forget_pending()
    model.observe(msg(9, T0 + 3 * DAY, ["a@b.example"]))
    assert model.state.learned == 0


def test_score_one_and_explain_one_are_pure() -> None:
    model, t = warmed(20)
    before = model.state.to_dict()
    x = msg("probe", t + 5 * DAY, ["q@far.example"])
    model.score_one(x)
    model.explain_one(x)
    assert model.state.to_dict() == before


def test_inputs_are_not_mutated() -> None:
    model, t = warmed(10)
    x = msg("in", t + 60, ["Q@Far.example", "c1@shop.example"])
    x["recipients"] = list(x["recipients"])
    snapshot = copy.deepcopy(x)
    model.score_one(x)
    model.explain_one(x)
    model.observe(x)
    model.learn_one(x)
    assert x == snapshot


def test_round_trip_gives_identical_scores() -> None:
    model, t = warmed(40)
    for x in burst(t + 600, n=3):
        model.observe(x)
    restored = SenderHabits(SenderState.from_dict(json.loads(json.dumps(model.state.to_dict()))))
    probes = [msg("r1", t + 700, COLLEAGUES[:2]), *burst(t + 800, n=5),
              msg("r2", t + 3 * DAY, ["n@new.example"])]
    for x in probes:
        assert restored.score_one(x) == model.score_one(x)
        assert restored.observe(x) == model.observe(x)
    assert restored.state.to_dict() == model.state.to_dict()


def test_seeded_determinism() -> None:
    a, _ = warmed(30, seed=3)
    b, _ = warmed(30, seed=3)
    c, _ = warmed(30, seed=4)
    assert a.state.to_dict() == b.state.to_dict()
    assert a.state.tables != c.state.tables
    with pytest.raises(ValueError):
        SenderHabits(a.state, seed=4)


def test_tolerates_odd_x() -> None:
    model = SenderHabits()
    odd: list[dict[Hashable, Any]] = [
        {}, {"timestamp": "nan?"}, {"recipients": None, "subject_tokens": 5},
        {"message_id": 7, "timestamp": T0, "recipients": "one@x.example"}]
    for x in odd:
        assert model.observe(x).action in {"deliver", "alert", "hold"}
