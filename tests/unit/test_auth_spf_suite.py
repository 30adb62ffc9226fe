"""The openspf RFC 7208 conformance suite (pyspf ``test/rfc7208-tests.yml``) against check_host().

Each scenario's ``zonedata`` is served by ``StaticResolver``. Conventions of the suite's own
driver: an ``SPF`` record is also served as TXT unless the name has an explicit ``TXT`` entry
(``TXT: NONE`` only suppresses that copy); the bare word ``TIMEOUT`` makes every query type of
the name time out unless a record of that type came before it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.auth.dns import StaticResolver
from streams.auth.spf import check_host, spf_domain_of

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
SUITE = SHARED / "data" / "spf" / "rfc7208-tests.yml"

_TYPES = ("TXT", "A", "AAAA", "MX", "PTR", "CNAME")


def _load_suite() -> list[dict[str, Any]]:
    if not SUITE.is_file():
        raise FileNotFoundError(
            f"SPF conformance suite missing: {SUITE} (the shared data must sit beside the project "
            "root as ../shared)"
        )
    # The suite holds non-UTF-8 octets: read as latin-1 so every octet maps to one code point.
    return [doc for doc in yaml.safe_load_all(SUITE.read_text(encoding="latin-1")) if doc]


def _zone(zonedata: dict[str, list[Any]]) -> dict[str, list[dict[str, Any]]]:
    zone: dict[str, list[dict[str, Any]]] = {}
    for name, entries in zonedata.items():
        has_txt = any(isinstance(e, dict) and "TXT" in e for e in entries)
        # (type, value) in order, "TIMEOUT" markers kept in place
        seq: list[tuple[str, Any]] = []
        for e in entries:
            if e == "TIMEOUT":
                seq.append(("TIMEOUT", None))
                continue
            ((rtype, value),) = e.items()
            if rtype == "SPF":
                if not has_txt:
                    seq.append(("TXT", value))
                continue
            if value == "NONE":
                continue
            seq.append((rtype, value))
        records: list[dict[str, Any]] = []
        first_timeout = next((i for i, it in enumerate(seq) if it[0] == "TIMEOUT"), None)
        for rtype in _TYPES:
            of_type = [(i, item[1]) for i, item in enumerate(seq) if item[0] == rtype]
            answered = first_timeout is None or any(i < first_timeout for i, _ in of_type)
            if rtype != "CNAME" and not answered:
                records.append({"type": rtype, "fault": "TIMEOUT"})
                continue
            records.extend({"type": rtype, "value": _value(rtype, v)} for _, v in of_type)
        zone[name] = records
    return zone


def _value(rtype: str, v: Any) -> Any:
    if rtype == "MX":
        pref, host = v
        return f"{pref} {host or '.'}"
    if rtype == "TXT":
        return list(v) if isinstance(v, list) else str(v)
    return str(v)


def _cases() -> list[Any]:
    params = []
    for scenario in _load_suite():
        zone = _zone(scenario.get("zonedata") or {})
        for name, test in scenario["tests"].items():
            params.append(pytest.param(scenario["description"], zone, test, id=name))
    return params


CASES = _cases()


def test_suite_is_complete() -> None:
    assert len(CASES) == 203


@pytest.mark.parametrize(("scenario", "zone", "test"), CASES)
async def test_rfc7208(scenario: str, zone: dict[str, Any], test: dict[str, Any]) -> None:
    resolver = StaticResolver(zone)
    helo = str(test["helo"])
    sender, domain = spf_domain_of(str(test["mailfrom"]), helo)
    got = await check_host(str(test["host"]), domain, sender, helo, resolver)
    expected = test["result"] if isinstance(test["result"], list) else [test["result"]]
    assert got.result in expected, f"{scenario}: {test.get('description', '')}"
    if "explanation" in test:
        want = str(test["explanation"])
        if want == "DEFAULT":
            assert got.explanation == ""
        else:
            # The suite writes the ip6.arpa nibbles of %{ir} in upper case; RFC 7208 7.4 shows
            # lower case and DNS does not care, so compare without case.
            assert got.explanation.lower() == want.lower()
