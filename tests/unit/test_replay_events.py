"""The packaged demo replay: shape, scenarios, malformed inputs and the small mode."""

from __future__ import annotations

import base64
import binascii
import collections
import email
import itertools
import json
import re
from dataclasses import dataclass
from email.message import Message
from email.utils import getaddresses
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from streams.replay.events import (
    COMPROMISED,
    LEGIT,
    SCENARIOS,
    SPOOF_BAD_DKIM,
    SPOOF_UNAUTHORISED_IP,
    ReplayItem,
    decode_event,
    default_path,
    labels,
    load_replay,
    message_ids_by_label,
    pad_raw_message,
    raw_message,
    read_records,
    scenario_accounts,
)
from streams.validation import Rejected, validate_outbound

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "schemas" / "sentinelle.outbound.v1.schema.json").read_text())
EMPLOYEES = ROOT.parent / "shared" / "data" / "email" / "enron-perry-wolfe-zhou" / "employees.tsv"
EMAIL_RE = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+", re.ASCII)
MiB = 1 << 20


@pytest.fixture(scope="module")
def items() -> list[ReplayItem]:
    return load_replay()


def well_formed(items: list[ReplayItem]) -> list[ReplayItem]:
    return [i for i in items if not i.malformed]


@dataclass(frozen=True)
class Parsed:
    item: ReplayItem
    event: dict[str, Any]
    msg: Message
    body: str


@pytest.fixture(scope="module")
def parsed(items: list[ReplayItem]) -> list[Parsed]:
    out = []
    for item in well_formed(items):
        msg = email.message_from_bytes(raw_message(item))
        payload = msg.get_payload(decode=True)
        assert isinstance(payload, bytes)
        out.append(Parsed(item, decode_event(item), msg, payload.decode("utf-8")))
    return out


def addresses(value: str) -> list[str]:
    return [a for _, a in getaddresses([value])]


def test_packaged_file_is_compact_and_sorted(items: list[ReplayItem]) -> None:
    assert default_path().stat().st_size < 3_000_000
    times = [i.timestamp for i in items]
    assert times == sorted(times)
    records = read_records()
    assert len(records) == len(items)
    assert [r["label"] for r in records] == [i.label for i in items]


def test_label_counts(items: list[ReplayItem]) -> None:
    counts = labels(items)
    assert 2_500 <= counts[LEGIT] <= 3_500
    assert counts[COMPROMISED] == 30
    assert 4 <= counts[SPOOF_UNAUTHORISED_IP] <= 6
    assert 4 <= counts[SPOOF_BAD_DKIM] <= 6
    malformed = {k for k in counts if k.startswith("malformed-")}
    assert {"malformed-bad-json", "malformed-missing-recipients", "malformed-oversize"} <= malformed


def test_about_twenty_accounts_of_real_senders(items: list[ReplayItem]) -> None:
    accounts = {i.account_id for i in items if i.label == LEGIT}
    assert 15 <= len(accounts) <= 25
    assert all(a is not None and a.startswith("acct-user-") for a in accounts)


def test_well_formed_events_follow_the_schema(items: list[ReplayItem]) -> None:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    ids = set()
    for item in well_formed(items):
        event = decode_event(item)
        validator.validate(event)
        raw = raw_message(item)
        assert event["size"] == len(raw)
        assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF line endings only
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["timestamp"])
        assert item.key == event["account_id"].encode()  # per-sender order
        assert item.account_id == event["account_id"]
        ids.add(event["message_id"])
    assert len(ids) == len(well_formed(items))


def test_headers_match_the_envelope(parsed: list[Parsed]) -> None:
    for p in parsed:
        event, msg = p.event, p.msg
        assert msg["Message-ID"] == f"<{event['message_id']}>"
        assert sorted(addresses(msg["To"])) == sorted(event["recipients"])
        if p.item.label == LEGIT:
            domain = event["message_id"].split("@")[1]
            assert addresses(msg["From"])[0].endswith("@" + domain)
            assert event["envelope_from"] == f"bounce+{event['account_id']}@{domain}"
            assert event["client_ip"].startswith("192.0.2.")
            assert event["helo"] == f"mta{int(event['client_ip'].split('.')[-1]) - 9}.relay.example"


def test_no_real_addresses_or_names(parsed: list[Parsed]) -> None:
    names: set[tuple[str, ...]] = set()
    if EMPLOYEES.exists():
        names = {tuple(re.findall(r"[a-z]+", line.split("\t")[1].lower()))
                 for line in EMPLOYEES.read_text().splitlines()}
    lengths = {len(n) for n in names}
    leaks = 0
    for p in parsed:
        text = "\n".join(f"{k}: {v}" for k, v in p.msg.items())
        text += "\n" + p.body + "\n" + " ".join(p.event["recipients"])
        for address in EMAIL_RE.findall(text):
            domain = address.rsplit("@", 1)[1].lower()
            leaks += not (domain.endswith(".example")
                          or domain in ("example.com", "example.org", "example.net"))
        words = re.findall(r"[a-z]+", text.lower())
        grams = {tuple(words[k:k + n]) for n in lengths for k in range(len(words) - n + 1)}
        leaks += len(names & grams)
    assert leaks == 0  # counts only: never print what leaked


def test_malformed_values(items: list[ReplayItem]) -> None:
    by_label = {i.label: i for i in items if i.malformed}
    assert all(i.key is None for i in by_label.values())
    with pytest.raises(json.JSONDecodeError):
        json.loads(by_label["malformed-bad-json"].value)
    missing = json.loads(by_label["malformed-missing-recipients"].value)
    assert "recipients" not in missing
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(missing, SCHEMA)
    wrong = json.loads(by_label["malformed-wrong-type"].value)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(wrong, SCHEMA)
    bad64 = json.loads(by_label["malformed-bad-base64"].value)
    with pytest.raises(binascii.Error):
        base64.b64decode(bad64["raw_message_b64"], validate=True)
    oversize = json.loads(by_label["malformed-oversize"].value)
    raw = base64.b64decode(oversize["raw_message_b64"], validate=True)
    assert len(raw) > MiB and oversize["size"] == len(raw)
    jsonschema.validate(oversize, SCHEMA)  # well-formed, only too big


def test_malformed_values_are_dead_lettered_by_ingest(items: list[ReplayItem]) -> None:
    expected = {"malformed-bad-json": "bad_json", "malformed-missing-recipients":
                "schema_violation", "malformed-wrong-type": "schema_violation",
                "malformed-oversize": "oversize"}
    for item in items:
        if item.malformed:
            outcome = validate_outbound(item.value, MiB)
            assert isinstance(outcome, Rejected), item.label
            if item.label in expected:
                assert outcome.reason == expected[item.label], item.label


def test_pad_raw_message_is_exact() -> None:
    base = b"Subject: x\r\n\r\nhi\r\n"
    for octets in (0, 1, 2, 99, 100, 101, 1_200_000):
        padded = pad_raw_message(base, octets)
        assert padded.startswith(base) and len(padded) - len(base) in (octets, octets - 1)


# ---------------------------------------------------------------------------- scenarios
def test_scenario_accounts(items: list[ReplayItem]) -> None:
    accounts = scenario_accounts(items)
    assert accounts[SPOOF_UNAUTHORISED_IP] == {"acct-spoofer-a"}
    assert accounts[SPOOF_BAD_DKIM] == {"acct-cheapdeals"}
    (victim,) = accounts[COMPROMISED]
    assert victim in {i.account_id for i in items if i.label == LEGIT}
    ids = message_ids_by_label(items)
    assert all(len(ids[label]) == labels(items)[label] for label in SCENARIOS)


def test_compromised_burst(items: list[ReplayItem], parsed: list[Parsed]) -> None:
    (victim,) = scenario_accounts(items)[COMPROMISED]
    burst = [i for i in items if i.label == COMPROMISED]
    legit = [i for i in items if i.label == LEGIT]
    start, end = legit[0].timestamp, legit[-1].timestamp
    assert burst[0].timestamp >= start + 0.6 * (end - start)
    gaps = [b.timestamp - a.timestamp for a, b in itertools.pairwise(burst)]
    assert all(10 <= g <= 40 for g in gaps)
    own = [i for i in legit if i.account_id == victim]
    before = [i for i in own if i.timestamp < burst[0].timestamp]
    assert len(before) >= 100
    assert any(i.timestamp > burst[-1].timestamp for i in own)  # normal traffic goes on
    seen = {r for i in before for r in decode_event(i)["recipients"]}
    for item in burst:
        event = decode_event(item)
        assert 1 <= len(event["recipients"]) <= 3
        assert not seen & set(event["recipients"])
        assert event["envelope_from"] == decode_event(own[0])["envelope_from"]
    assert all("http" in p.body for p in parsed if p.item.label == COMPROMISED)


def test_spoofers(items: list[ReplayItem]) -> None:
    for item in items:
        if item.label == SPOOF_UNAUTHORISED_IP:
            event = decode_event(item)
            assert event["client_ip"].startswith("203.0.113.")
            assert b"DKIM-Signature" not in raw_message(item)
        elif item.label == SPOOF_BAD_DKIM:
            event = decode_event(item)
            assert event["envelope_from"] == "bounce@cheapdeals.example"
            assert event["client_ip"].startswith("192.0.2.")
            assert b"d=contoso.example" in raw_message(item)


# ---------------------------------------------------------------------------- selections
@pytest.mark.parametrize("size", [300, 400, 500])
def test_small_replay_keeps_every_story(items: list[ReplayItem], size: int) -> None:
    small = load_replay(max_messages=size)
    assert len(small) <= size
    assert [i.timestamp for i in small] == sorted(i.timestamp for i in small)
    full = labels(items)
    counts = labels(small)
    for label, n in full.items():
        if label != LEGIT:
            assert counts[label] == n, label
    (victim,) = scenario_accounts(small)[COMPROMISED]
    burst_start = min(i.timestamp for i in small if i.label == COMPROMISED)
    history = [i for i in small if i.account_id == victim and i.label == LEGIT]
    assert sum(i.timestamp < burst_start for i in history) >= size // 4
    assert any(i.timestamp > burst_start for i in history)
    senders = collections.Counter(i.account_id for i in small if i.label == LEGIT)
    assert len(senders) == 4


def test_small_replay_is_a_subset(items: list[ReplayItem]) -> None:
    assert set(load_replay(max_messages=400)) <= set(items)


def test_small_replay_rejects_a_budget_below_the_scenarios() -> None:
    with pytest.raises(ValueError):
        load_replay(max_messages=10)


def test_limit_senders(items: list[ReplayItem]) -> None:
    two = load_replay(limit_senders=2)
    accounts = {i.account_id for i in two if i.label == LEGIT}
    assert len(accounts) == 2
    assert scenario_accounts(items)[COMPROMISED] <= accounts
    assert labels(two)[COMPROMISED] == 30


def test_explicit_path(tmp_path: Path) -> None:
    assert load_replay(default_path(), max_messages=300) == load_replay(max_messages=300)
