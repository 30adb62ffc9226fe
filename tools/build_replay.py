"""Build the demo's real-mail replay, its DNS zones and its test-only DKIM keys.

Reads the public corpora under ``<shared>/data/email`` (read-only) and writes:

* ``streams/embedded/keys/``: one test-only DKIM key per signing domain, generated once and then
  reused, so rebuilding gives byte-identical output;
* ``streams/embedded/zones/<zone>.zone``: RFC 1035 master files of the demo world;
* ``--out`` (default ``streams/replay/data/demo-replay.jsonl.gz``): one JSON object per line,
  sorted by time: ``{"label": ..., "event": {...}}`` (schema ``sentinelle.outbound.v1``) or, for
  malformed input, ``{"label": "malformed-...", "at": ..., "raw": "<Kafka value>"}``.

Real people's names and addresses never reach the output: every Enron employee becomes a stable
pseudonym derived from a hash of the employee's numeric id, and addresses inside bodies are
rewritten. Nothing personal is printed; progress goes to stderr.

    python tools/build_replay.py --shared ../shared --out streams/replay/data/demo-replay.jsonl.gz
"""

from __future__ import annotations

import argparse
import base64
import collections
import contextlib
import csv
import datetime as dt
import email
import email.policy
import gzip
import hashlib
import io
import json
import random
import re
import sys
import tarfile
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import dkim
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

ROOT = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------------------- the demo world
RELAY_DOMAIN = "relay.example"
RELAY_HOSTS = {f"mta{n}.relay.example": f"192.0.2.{9 + n}" for n in range(1, 5)}
RELAY_NET = "192.0.2.0/24"
NS_HOST, NS_IP = "ns1.relay.example", "192.0.2.53"
RSA_DOMAINS = ("northwind.example", "contoso.example", "fabrikam.example", "wingtip.example")
ED25519_DOMAINS = ("tailspin.example", "adatum.example")
CUSTOMER_DOMAINS = (
    "northwind.example", "contoso.example", "fabrikam.example",
    "tailspin.example", "wingtip.example", "adatum.example",
)
ABUSIVE_DOMAIN = "cheapdeals.example"
PARTNER_DOMAINS = ("partner1.example", "partner2.example")
VICTIM_DOMAINS = (
    "mailhub.example", "post-office.example", "webmail-one.example",
    "inbox-central.example", "netpost.example", "freemail-two.example",
)
SELECTOR = "s1"
SIGNED_HEADERS = [b"from", b"to", b"subject", b"date", b"message-id"]
SOA_SERIAL = 2024010101

# the replay
SEED = 20240101
WINDOW = ("2001-01-01", "2001-05-16")
N_SENDERS = 20
LEGIT = "legit"
SPOOF_IP = "spoof-unauthorised-ip"
SPOOF_BAD_DKIM = "spoof-bad-dkim"
COMPROMISED = "compromised"
BURST_SIZE = 30
OVERSIZE_PAD = 1_200_000  # body octets the reader appends to the oversize event (> 1 MiB)


def log(msg: str) -> None:
    print(f"[build_replay] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- dkimpy glue
def ensure_ed25519_support() -> None:
    """Give dkimpy Ed25519 (RFC 8463) through ``cryptography`` when PyNaCl is absent.

    dkimpy reaches Ed25519 only through a module-global ``nacl``; PyNaCl is not a project
    dependency, so this installs a minimal stand-in with the four names dkimpy uses.
    """
    if hasattr(dkim, "nacl"):
        return

    class NaclValueError(ValueError):
        pass

    class BadSignatureError(Exception):
        pass

    def _raw(data: bytes, encoder: Any) -> bytes:
        try:
            return base64.b64decode(data, validate=False) if encoder is not None else data
        except ValueError as exc:
            raise NaclValueError(str(exc)) from exc

    class SigningKey:
        def __init__(self, seed: bytes, encoder: Any = None) -> None:
            try:
                self._key = ed25519.Ed25519PrivateKey.from_private_bytes(_raw(seed, encoder))
            except ValueError as exc:
                raise NaclValueError(str(exc)) from exc

        def sign(self, data: bytes) -> SimpleNamespace:
            return SimpleNamespace(signature=self._key.sign(data))

    class VerifyKey:
        def __init__(self, key: bytes, encoder: Any = None) -> None:
            try:
                self._key = ed25519.Ed25519PublicKey.from_public_bytes(_raw(key, encoder))
            except ValueError as exc:
                raise NaclValueError(str(exc)) from exc

        def verify(self, data: bytes, signature: bytes) -> bytes:
            try:
                self._key.verify(signature, data)
            except InvalidSignature as exc:
                raise BadSignatureError("signature was forged or corrupt") from exc
            return data

    dkim.nacl = SimpleNamespace(
        signing=SimpleNamespace(SigningKey=SigningKey, VerifyKey=VerifyKey),
        encoding=SimpleNamespace(Base64Encoder=object()),
        exceptions=SimpleNamespace(ValueError=NaclValueError, BadSignatureError=BadSignatureError),
    )


@contextlib.contextmanager
def dkim_clock(timestamp: int) -> Iterator[None]:
    """Make dkimpy stamp ``t=`` with the message's own time, so signing is deterministic."""
    real = dkim.time
    dkim.time = SimpleNamespace(time=lambda: float(timestamp))
    try:
        yield
    finally:
        dkim.time = real


# ---------------------------------------------------------------------------- keys
@dataclass(frozen=True)
class DomainKey:
    domain: str
    algorithm: str  # "rsa" or "ed25519"
    dkim_privkey: bytes  # what dkim.sign takes: PKCS#1 PEM (RSA) or base64 seed (Ed25519)
    public_b64: str  # the p= value

    @property
    def signature_algorithm(self) -> bytes:
        return b"rsa-sha256" if self.algorithm == "rsa" else b"ed25519-sha256"

    @property
    def txt(self) -> str:
        return f"v=DKIM1; k={self.algorithm}; p={self.public_b64}"


def key_path(keys_dir: Path, domain: str, algorithm: str) -> Path:
    return keys_dir / f"{domain}.{SELECTOR}.{algorithm}.pem"


def load_or_create_keys(keys_dir: Path) -> dict[str, DomainKey]:
    """Read the committed test-only keys; generate (once) only those that are missing."""
    keys_dir.mkdir(parents=True, exist_ok=True)
    plan = [(d, "rsa") for d in (*RSA_DOMAINS, ABUSIVE_DOMAIN)]
    plan += [(d, "ed25519") for d in ED25519_DOMAINS]
    keys: dict[str, DomainKey] = {}
    for domain, algorithm in sorted(plan):
        path = key_path(keys_dir, domain, algorithm)
        if not path.exists():
            log(f"generating missing test key {path.name}")
            new: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
            if algorithm == "rsa":
                new = rsa.generate_private_key(public_exponent=65537, key_size=2048)
                fmt = serialization.PrivateFormat.TraditionalOpenSSL  # PKCS#1, as dkimpy wants
            else:
                new = ed25519.Ed25519PrivateKey.generate()
                fmt = serialization.PrivateFormat.PKCS8
            path.write_bytes(new.private_bytes(
                serialization.Encoding.PEM, fmt, serialization.NoEncryption()))
        pem = path.read_bytes()
        loaded = serialization.load_pem_private_key(pem, password=None)
        if isinstance(loaded, rsa.RSAPrivateKey):
            spki = loaded.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            keys[domain] = DomainKey(domain, "rsa", pem, base64.b64encode(spki).decode())
        elif isinstance(loaded, ed25519.Ed25519PrivateKey):
            seed = loaded.private_bytes(serialization.Encoding.Raw,
                                        serialization.PrivateFormat.Raw,
                                        serialization.NoEncryption())
            pub = loaded.public_key().public_bytes(serialization.Encoding.Raw,
                                                   serialization.PublicFormat.Raw)
            keys[domain] = DomainKey(domain, "ed25519", base64.b64encode(seed),
                                     base64.b64encode(pub).decode())
        else:
            raise SystemExit(f"{path}: unexpected key type")
    return keys


# ---------------------------------------------------------------------------- zones
def txt_rdata(value: str) -> str:
    """A TXT value as quoted strings of at most 255 octets each (RFC 1035 3.3.14)."""
    chunks = [value[i:i + 255] for i in range(0, len(value), 255)] or [""]
    return " ".join(f'"{c}"' for c in chunks)


def zone_text(zone: str, records: Sequence[tuple[str, str, str]]) -> str:
    lines = [
        "; Sentinelle demo zone: test-only data under the reserved .example TLD (RFC 2606).",
        "; Generated by tools/build_replay.py; edit the tool, not this file.",
        f"$ORIGIN {zone}.",
        "$TTL 300",
        f"@\tIN\tSOA\t{NS_HOST}. hostmaster.{zone}. ( {SOA_SERIAL} 3600 600 86400 300 )",
        f"@\tIN\tNS\t{NS_HOST}.",
    ]
    lines += [f"{name}\tIN\t{rtype}\t{rdata}" for name, rtype, rdata in records]
    return "\n".join(lines) + "\n"


def write_zones(zones_dir: Path, keys: dict[str, DomainKey]) -> list[Path]:
    zones_dir.mkdir(parents=True, exist_ok=True)
    spf_include = txt_rdata(f"v=spf1 include:_spf.{RELAY_DOMAIN} -all")
    zones: dict[str, list[tuple[str, str, str]]] = {
        RELAY_DOMAIN: [
            ("ns1", "A", NS_IP),
            *[(host.split(".")[0], "A", ip) for host, ip in RELAY_HOSTS.items()],
            ("_spf", "TXT", txt_rdata(f"v=spf1 ip4:{RELAY_NET} -all")),
        ],
    }
    for domain in (*CUSTOMER_DOMAINS, ABUSIVE_DOMAIN):
        policy = "none" if domain == ABUSIVE_DOMAIN else "reject"
        zones[domain] = [
            ("@", "TXT", spf_include),
            (f"{SELECTOR}._domainkey", "TXT", txt_rdata(keys[domain].txt)),
            ("_dmarc", "TXT", txt_rdata(f"v=DMARC1; p={policy}; adkim=r; aspf=r")),
        ]
    for domain in PARTNER_DOMAINS:  # recipients only; they send nothing through the ESP
        zones[domain] = [("@", "TXT", txt_rdata("v=spf1 -all"))]
    paths = []
    for zone, records in sorted(zones.items()):
        path = zones_dir / f"{zone}.zone"
        path.write_text(zone_text(zone, records), encoding="ascii")
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------- pseudonyms, text
EMAIL_RE = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+", re.ASCII)
WROTE_RE = re.compile(r"^.*\bwrote:\s*$", re.MULTILINE)
SIGNATURE_RE = re.compile(r"^(?:-- ?|_{10,}|-{10,})$", re.MULTILINE)


def digest(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()


def pseudonym(employee_id: str) -> str:
    return f"user-{digest('sentinelle-demo-employee', employee_id)[:6]}"


def scrub_addresses(text: str) -> str:
    """Replace every address in ``text`` by a stable pseudonym under example.com."""
    return EMAIL_RE.sub(lambda m: f"user-{digest('addr', m.group(0).lower())[:6]}@example.com",
                        text)


def clean_text(text: str, width: int = 76) -> str:
    """Normalise whitespace and wrap long lines without breaking links."""
    out: list[str] = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = re.sub(r"[ \t\u00a0]+", " ", line).rstrip()
        if len(line) <= width:
            out.append(line)
        else:
            out.extend(textwrap.wrap(line, width, break_long_words=False,
                                     break_on_hyphens=False) or [""])
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip() + "\n"


def utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def rfc3339(ts: float) -> str:
    return utc(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------- corpora
@dataclass(frozen=True)
class EnronMessage:
    mid: str
    ts: int
    subject: str
    sender: str
    recipients: tuple[str, ...]


def load_enron(folder: Path) -> tuple[list[EnronMessage], dict[str, str]]:
    recips: dict[str, list[tuple[int, str]]] = collections.defaultdict(list)
    with open(folder / "recipients.tsv", encoding="utf-8") as fh:
        for line in fh:
            mid, rank, rid = line.rstrip("\n").split("\t")
            recips[mid].append((int(rank), rid))
    names: dict[str, str] = {}
    with open(folder / "employees.tsv", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            cols = line.rstrip("\n").split("\t")
            names[cols[0]] = cols[1]
    msgs = []
    with open(folder / "messages.tsv", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            mid, _path, ts, subject, sender = line.rstrip("\n").split("\t")
            rs = tuple(dict.fromkeys(r for _, r in sorted(recips.get(mid, []))))
            if rs:
                msgs.append(EnronMessage(mid, int(ts), subject, sender, rs))
    return msgs, names


def load_spamassassin(tar_path: Path) -> dict[str, list[str]]:
    """Plain-text bodies by folder kind ("easy-ham", "spam"), headers dropped, cleaned."""
    pools: dict[str, list[str]] = {"easy-ham": [], "spam": []}
    with tarfile.open(tar_path) as tf:
        members = sorted((m for m in tf if m.isfile()), key=lambda m: m.name)
        for m in members:
            kind = m.name.split("/")[1].rsplit("-", 1)[0]
            if kind not in pools:
                continue
            fh = tf.extractfile(m)
            if fh is None:
                continue
            msg = email.message_from_bytes(fh.read(), policy=email.policy.default)
            try:
                part = msg.get_body(preferencelist=("plain",))
                text = part.get_content() if part is not None else None
            except (LookupError, ValueError, AssertionError):
                continue
            if not isinstance(text, str) or not text.isascii() or "<html" in text.lower():
                continue
            text = SIGNATURE_RE.split(text, maxsplit=1)[0]  # drop signatures and list footers
            text = clean_text(WROTE_RE.sub("Someone wrote:", scrub_addresses(text)))
            if 150 <= len(text) <= 900 and text.count("\n") >= 3:
                pools[kind].append(text)
    return pools


def load_nazario(csv_path: Path) -> list[tuple[str, str]]:
    """(subject, body) of phishing messages that carry a link, with addresses rewritten."""
    csv.field_size_limit(sys.maxsize)
    out = []
    with open(csv_path, encoding="utf-8", errors="replace", newline="") as fh:
        for row in csv.DictReader(fh):
            subject, body = row["subject"].strip(), row["body"]
            if not subject or "http" not in body or not 200 <= len(body) <= 2500:
                continue
            if sum(not c.isascii() for c in body + subject) > 5:
                continue

            def fix(text: str) -> str:
                text = scrub_addresses(text).replace("monkey.org", "example.org")
                return re.sub(r"\bjose\b", "user", text, flags=re.IGNORECASE)

            out.append((re.sub(r"\s+", " ", fix(subject)), clean_text(fix(body))))
    return out


# ---------------------------------------------------------------------------- messages
def message_bytes(sender: str, to: Sequence[str], subject: str, ts: int, msg_id: str,
                  body: str) -> bytes:
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = re.sub(r"[\x00-\x1f\x7f]", " ", subject)
    msg["Date"] = format_datetime(utc(ts))
    msg["Message-ID"] = f"<{msg_id}>"
    msg.set_content(body)
    return msg.as_bytes()


def sign(raw: bytes, key: DomainKey, ts: int, claim_domain: str | None = None) -> bytes:
    """Prepend a DKIM-Signature (relaxed/relaxed) made with ``key``, stamped ``t=ts``.

    ``claim_domain`` puts another d= on the signature than the key's owner: it then fails.
    """
    with dkim_clock(ts):
        header = dkim.sign(raw, SELECTOR.encode(), (claim_domain or key.domain).encode(),
                           key.dkim_privkey, canonicalize=(b"relaxed", b"relaxed"),
                           signature_algorithm=key.signature_algorithm,
                           include_headers=SIGNED_HEADERS)
    return bytes(header) + raw


def event(msg_id: str, account: str, envelope_from: str, ip: str, helo: str,
          recipients: Sequence[str], ts: int, raw: bytes) -> dict[str, Any]:
    return {
        "message_id": msg_id, "account_id": account, "envelope_from": envelope_from,
        "client_ip": ip, "helo": helo, "recipients": list(recipients), "timestamp": rfc3339(ts),
        "size": len(raw), "raw_message_b64": base64.b64encode(raw).decode("ascii"),
    }


def relay_for(*parts: object) -> tuple[str, str]:
    hosts = sorted(RELAY_HOSTS)
    host = hosts[int(digest("relay", *parts)[:8], 16) % len(hosts)]
    return RELAY_HOSTS[host], host


# ---------------------------------------------------------------------------- the build
@dataclass
class Line:
    ts: int
    order: str
    record: dict[str, Any]


def build(shared: Path, keys: dict[str, DomainKey], seed: int, window: tuple[str, str],
          n_senders: int) -> list[Line]:
    rng = random.Random(seed)
    email_dir = shared / "data" / "email"
    log("reading the Enron timelines")
    messages, names = load_enron(email_dir / "enron-perry-wolfe-zhou")
    t0 = int(dt.datetime.fromisoformat(window[0]).replace(tzinfo=dt.UTC).timestamp())
    t1 = int(dt.datetime.fromisoformat(window[1]).replace(tzinfo=dt.UTC).timestamp())
    in_window = [m for m in messages if t0 <= m.ts < t1]
    counts = collections.Counter(m.sender for m in in_window)
    senders = [s for s, _ in sorted(counts.items(), key=lambda kv: (-kv[1], int(kv[0])))]
    senders = senders[:n_senders]
    legit = sorted((m for m in in_window if m.sender in set(senders)),
                   key=lambda m: (m.ts, int(m.mid)))
    span = legit[-1].ts - legit[0].ts
    start = legit[0].ts

    # identities: selected senders own accounts at customer domains; everyone else is spread
    # over the customer and partner domains
    domain_of: dict[str, str] = {s: CUSTOMER_DOMAINS[i % 6] for i, s in enumerate(senders)}
    others = (*CUSTOMER_DOMAINS, *PARTNER_DOMAINS)
    for eid in names:
        domain_of.setdefault(eid, others[int(digest("domain", eid)[:8], 16) % len(others)])
    addr = {eid: f"{pseudonym(eid)}@{domain_of[eid]}" for eid in names}
    if len(set(addr.values())) != len(addr):
        raise SystemExit("pseudonym collision: change the pseudonym length")
    account = {s: f"acct-{pseudonym(s)}" for s in senders}
    name_res = [(re.compile(rf"\b{re.escape(n)}\b", re.IGNORECASE), pseudonym(e))
                for e, n in names.items() if " " in n.strip()]

    def subject_of(m: EnronMessage) -> str:
        s = scrub_addresses(m.subject)
        for pat, rep in name_res:
            s = pat.sub(rep, s)
        return s

    log("reading SpamAssassin bodies and Nazario phishing")
    pools = load_spamassassin(email_dir / "spamassassin-public-corpus"
                              / "spamassassin-public-corpus.txt.tar.xz")
    ham, spam = pools["easy-ham"], pools["spam"]
    phish = load_nazario(email_dir / "curated-nazario-csv" / "Nazario.csv")
    log(f"{len(ham)} ham bodies, {len(spam)} spam bodies, {len(phish)} phishing messages usable")
    phish_pick = rng.sample(phish, BURST_SIZE + 5)

    lines: list[Line] = []

    def add(label: str, ev: dict[str, Any]) -> None:
        lines.append(Line(int(dt.datetime.strptime(ev["timestamp"], "%Y-%m-%dT%H:%M:%SZ")
                              .replace(tzinfo=dt.UTC).timestamp()), ev["message_id"],
                          {"label": label, "event": ev}))

    # legitimate traffic
    log(f"signing {len(legit)} legitimate messages from {len(senders)} senders")
    for i, m in enumerate(legit, 1):
        domain = domain_of[m.sender]
        mid = f"{digest('legit', m.mid)[:20]}@{domain}"
        to = [addr[r] for r in m.recipients]
        body = ham[int(digest("ham", m.mid)[:8], 16) % len(ham)]
        raw = sign(message_bytes(addr[m.sender], to, subject_of(m), m.ts, mid, body),
                   keys[domain], m.ts)
        ip, helo = relay_for(m.mid)
        add(LEGIT, event(mid, account[m.sender], f"bounce+{account[m.sender]}@{domain}", ip,
                         helo, to, m.ts, raw))
        if i % 500 == 0:
            log(f"  signed {i}/{len(legit)}")

    # c: one regular sender's account is taken over after >= 65 % of the window
    split = start + int(span * 0.65)
    post = collections.Counter(m.sender for m in legit if m.ts > split + 86400)

    def regularity(s: str) -> tuple[int, int]:
        days = {utc(m.ts).date() for m in legit if m.sender == s and m.ts < split}
        return len(days), counts[s]

    victim_sender = max((s for s in senders if post[s] >= 10), key=regularity)
    first_after = min(m.ts for m in legit if m.sender == victim_sender and m.ts >= split)
    domain = domain_of[victim_sender]
    history = {addr[r] for m in legit if m.sender == victim_sender for r in m.recipients}
    t = first_after + 7 * 60
    log(f"burst of {BURST_SIZE} from a sender with {regularity(victim_sender)[0]} active days "
        "before it")
    for n, (subject, body) in enumerate(phish_pick[:BURST_SIZE]):
        t += rng.randint(10, 40)
        to = [f"victim-{n * 3 + k + 1}@{rng.choice(VICTIM_DOMAINS)}"
              for k in range(rng.randint(1, 3))]
        assert not history & set(to)
        mid = f"{digest('compromised', n)[:20]}@{domain}"
        raw = sign(message_bytes(addr[victim_sender], to, subject, t, mid, body), keys[domain], t)
        ip, helo = relay_for("compromised", n)
        add(COMPROMISED, event(mid, account[victim_sender],
                               f"bounce+{account[victim_sender]}@{domain}", ip, helo, to, t, raw))

    # a: a spoofer outside the relay claims a customer domain, unsigned
    targets = sorted({addr[r] for m in legit for r in m.recipients})
    for n, (subject, body) in enumerate(phish_pick[BURST_SIZE:]):
        t = start + int(span * rng.uniform(0.70, 0.92))
        mid = f"{digest('spoof-a', n)[:20]}@fabrikam.example"
        to = rng.sample(targets, rng.randint(1, 3))
        raw = message_bytes("accounts@fabrikam.example", to, subject, t, mid, body)
        add(SPOOF_IP, event(mid, "acct-spoofer-a", "billing@fabrikam.example",
                            f"203.0.113.{rng.randint(20, 220)}", "mail.fabrikam-billing.example",
                            to, t, raw))

    # b: the abusive account sends as contoso.example through the relay; d=contoso.example is
    # claimed but signed with cheapdeals' own key, so DKIM fails and SPF is not aligned
    for n in range(5):
        t = start + int(span * rng.uniform(0.72, 0.94))
        mid = f"{digest('spoof-b', n)[:20]}@contoso.example"
        to = rng.sample(targets, rng.randint(1, 3))
        body = spam[rng.randrange(len(spam))]
        raw = sign(message_bytes("offers@contoso.example", to, "Exclusive offer for Contoso "
                                 "customers", t, mid, body), keys[ABUSIVE_DOMAIN], t,
                   claim_domain="contoso.example")
        ip, helo = relay_for("spoof-b", n)
        add(SPOOF_BAD_DKIM, event(mid, "acct-cheapdeals", f"bounce@{ABUSIVE_DOMAIN}", ip, helo,
                                  to, t, raw))

    lines.extend(malformed(legit, addr, account, domain_of, start, span))
    lines.sort(key=lambda ln: (ln.ts, ln.order))
    return lines


def malformed(legit: Sequence[EnronMessage], addr: dict[str, str], account: dict[str, str],
              domain_of: dict[str, str], start: int, span: int) -> list[Line]:
    """A handful of inputs the ingest stage must dead-letter, spread over the later part."""
    out: list[Line] = []
    for n, (reason, frac) in enumerate([("bad-json", 0.55), ("missing-recipients", 0.70),
                                        ("bad-base64", 0.78), ("oversize", 0.84),
                                        ("wrong-type", 0.90)]):
        m = legit[int(len(legit) * frac)]
        ts = start + int(span * frac) + 1
        domain = domain_of[m.sender]
        mid = f"{digest('malformed', reason)[:20]}@{domain}"
        to = [addr[r] for r in m.recipients[:2]]
        raw = message_bytes(addr[m.sender], to, f"Report {n + 1}", ts, mid,
                            "See the attached report.\n")
        ev = event(mid, account[m.sender], f"bounce+{account[m.sender]}@{domain}",
                   *relay_for("malformed", reason), to, ts, raw)
        label = f"malformed-{reason}"
        record: dict[str, Any] = {"label": label, "at": rfc3339(ts)}
        if reason == "bad-json":
            record["raw"] = json.dumps(ev, separators=(",", ":"))[:180]
        elif reason == "missing-recipients":
            del ev["recipients"]
            record["raw"] = json.dumps(ev, separators=(",", ":"))
        elif reason == "bad-base64":
            ev["raw_message_b64"] = "%%% this is not base64 %%%" + ev["raw_message_b64"][:40]
            record["raw"] = json.dumps(ev, separators=(",", ":"))
        elif reason == "wrong-type":
            ev["recipients"], ev["size"] = ", ".join(to), str(ev["size"])
            record["raw"] = json.dumps(ev, separators=(",", ":"))
        else:  # oversize: a compact marker that streams/replay/events.py expands when loaded
            del record["at"]
            record["event"], record["pad_body_octets"] = ev, OVERSIZE_PAD
        out.append(Line(ts, mid, record))
    return out


def write_jsonl_gz(lines: Sequence[Line], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        for ln in lines:
            gz.write(json.dumps(ln.record, separators=(",", ":")).encode() + b"\n")
    out.write_bytes(buf.getvalue())


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared",
                    help="the shared folder holding data/ (default ../shared)")
    ap.add_argument("--out", type=Path,
                    default=ROOT / "streams/replay/data/demo-replay.jsonl.gz")
    ap.add_argument("--keys", type=Path, default=ROOT / "streams/embedded/keys")
    ap.add_argument("--zones", type=Path, default=ROOT / "streams/embedded/zones")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--start", default=WINDOW[0], help="window start (UTC date)")
    ap.add_argument("--end", default=WINDOW[1], help="window end, exclusive (UTC date)")
    ap.add_argument("--senders", type=int, default=N_SENDERS)
    args = ap.parse_args(argv)

    ensure_ed25519_support()
    keys = load_or_create_keys(args.keys)
    zones = write_zones(args.zones, keys)
    log(f"wrote {len(zones)} zone files to {args.zones}")
    lines = build(args.shared, keys, args.seed, (args.start, args.end), args.senders)
    write_jsonl_gz(lines, args.out)
    labels = collections.Counter(ln.record["label"] for ln in lines)
    log(f"wrote {len(lines)} lines ({args.out.stat().st_size / 1e6:.2f} MB) to {args.out}: "
        + ", ".join(f"{k}={v}" for k, v in sorted(labels.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
