"""A small authoritative DNS server for SPF, DKIM and DMARC lookups in the demo and tests.

Why a real server rather than a mocked resolver: the auth stage must be exercised through the
same resolver code, sockets, timeouts and UDP→TCP fallback it uses in production. Long DKIM
keys and SPF records are exactly the answers that overflow 512 bytes.

It serves every ``*.zone`` master file in a directory (origin from ``$ORIGIN`` or the file name)
over UDP and TCP on one port, answering with the AA flag and RFC-correct RCODEs: NXDOMAIN for
names absent from a zone, NOERROR with no answer (NODATA, SOA in authority) for existing names
or empty non-terminals lacking the type, REFUSED outside its zones — or, as a closed world
(``closed_world=True``, what the demo uses since this server is its only resolver), NXDOMAIN
there, as a recursive resolver answers for a name that does not exist. CNAMEs inside a zone are
chased, wildcards are honoured at the closest encloser. UDP answers that exceed 512 bytes (or
the client's EDNS payload size) are sent empty with TC set so the client retries over TCP.

Faults can be injected per name and type (``"timeout"`` drops the query, ``"servfail"``
answers SERVFAIL, ``"nxdomain"`` denies the name even where the zone has it) so resolver error
handling is testable.

CLI: ``python -m streams.embedded.dns_server --zones DIR --port N`` prints
``ready 127.0.0.1:N`` once both sockets listen.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import struct
import sys
from collections.abc import Iterator, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Literal

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.node
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rrset
import dns.zone

from streams.embedded.procs import (
    LOOPBACK,
    exit_when_stdin_closes,
    free_port,
    serve_until_signalled,
    serving,
)

__all__ = [
    "DnsServer",
    "Fault",
    "default_zones_dir",
    "load_zones",
    "parse_fault",
    "start_dns_server",
]

Fault = Literal["timeout", "servfail", "nxdomain"]
FAULT_KINDS = ("timeout", "servfail", "nxdomain")
FaultKey = tuple[str, str]  # (absolute lower-case name, TYPE or "*")
CLASSIC_UDP_LIMIT = 512
OUR_EDNS_PAYLOAD = 1232  # the DNS-flag-day value: avoids IP fragmentation
MAX_CNAME_CHAIN = 8


def default_zones_dir() -> Path:
    """The zone files shipped with the package (``streams/embedded/zones``)."""
    return Path(str(resources.files("streams.embedded").joinpath("zones")))


def load_zones(directory: str | os.PathLike[str]) -> dict[dns.name.Name, dns.zone.Zone]:
    """Parse every ``*.zone`` file in ``directory``; each must have an SOA at its origin.

    The origin is the file's ``$ORIGIN`` or, failing that, its name without ``.zone``
    (``example.com.zone`` → ``example.com.``). The SOA is required because negative answers
    carry it (RFC 2308).
    """
    zones: dict[dns.name.Name, dns.zone.Zone] = {}
    for path in sorted(Path(directory).glob("*.zone")):
        origin = dns.name.from_text(path.name[: -len(".zone")])
        try:
            zone = dns.zone.from_file(
                str(path), origin=origin, relativize=False, check_origin=False
            )
        except dns.exception.DNSException as exc:
            raise ValueError(f"{path}: {exc}") from exc
        assert zone.origin is not None
        if zone.get_rdataset(zone.origin, dns.rdatatype.SOA) is None:
            raise ValueError(f"{path}: zone {zone.origin} has no SOA at its origin")
        if zone.origin in zones:
            raise ValueError(f"{path}: zone {zone.origin} defined twice")
        zones[zone.origin] = zone
    return zones


def parse_fault(text: str) -> tuple[FaultKey, Fault]:
    """Parse ``NAME/TYPE=timeout|servfail|nxdomain`` (TYPE may be ``*``) from the command line."""
    target, sep, kind = text.rpartition("=")
    name, slash, rdtype = target.rpartition("/")
    if not sep or not slash or kind not in FAULT_KINDS:
        raise ValueError(f"bad fault {text!r}; expected NAME/TYPE=" + "|".join(FAULT_KINDS))
    return _fault_key(name, rdtype), kind  # type: ignore[return-value]


def _fault_key(name: str, rdtype: str) -> FaultKey:
    return dns.name.from_text(name).to_text().lower(), rdtype.upper()


class DnsServer:
    """Answers DNS queries from in-memory zones; transport-independent and unit-testable.

    ``faults`` maps ``(name, TYPE)`` (TYPE may be ``"*"``) to ``"timeout"``, ``"servfail"``
    or ``"nxdomain"``.
    """

    def __init__(
        self,
        zones: Mapping[dns.name.Name, dns.zone.Zone],
        faults: Mapping[tuple[str, str], Fault] | None = None,
        closed_world: bool = False,
    ) -> None:
        self.zones = dict(zones)
        self.closed_world = closed_world
        self.faults: dict[FaultKey, Fault] = {
            _fault_key(n, t): f for (n, t), f in (faults or {}).items()
        }

    def find_zone(self, qname: dns.name.Name) -> dns.zone.Zone | None:
        """The zone with the longest origin that contains ``qname``."""
        best: dns.zone.Zone | None = None
        for origin, zone in self.zones.items():
            if qname.is_subdomain(origin) and (
                best is None or len(origin) > len(best.origin or dns.name.root)
            ):
                best = zone
        return best

    def handle(self, wire: bytes, transport: Literal["udp", "tcp"]) -> bytes | None:
        """Answer one query in wire format; None means send nothing (drop or timeout fault)."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return self._formerr(wire)
        response = self.respond(query)
        if response is None:
            return None
        if transport == "tcp":
            return response.to_wire(max_size=65535)
        limit = CLASSIC_UDP_LIMIT
        if query.edns >= 0:
            limit = max(CLASSIC_UDP_LIMIT, min(query.payload, OUR_EDNS_PAYLOAD))
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            response.answer.clear()
            response.authority.clear()
            response.additional.clear()
            response.flags |= dns.flags.TC
            return response.to_wire(max_size=limit)

    def respond(self, query: dns.message.Message) -> dns.message.Message | None:
        """Build the response message for ``query`` (None for an injected timeout)."""
        response = dns.message.make_response(query, our_payload=OUR_EDNS_PAYLOAD)
        response.flags &= ~dns.flags.RA  # authoritative only, no recursion
        if query.opcode() != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)
            return response
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response
        question = query.question[0]
        qname, qtype = question.name, question.rdtype
        key = qname.to_text().lower()
        fault = self.faults.get((key, dns.rdatatype.to_text(qtype))) or self.faults.get(
            (key, "*")
        )
        if fault == "timeout":
            return None
        if fault == "servfail":
            response.set_rcode(dns.rcode.SERVFAIL)
            return response
        if fault == "nxdomain":
            response.set_rcode(dns.rcode.NXDOMAIN)
            return response
        if question.rdclass != dns.rdataclass.IN:
            response.set_rcode(dns.rcode.REFUSED)
            return response
        zone = self.find_zone(qname)
        if zone is None:
            # In a closed world nothing else exists (a DMARC tree walk up to "_dmarc.example"
            # must see "no record", not a server error).
            response.set_rcode(dns.rcode.NXDOMAIN if self.closed_world else dns.rcode.REFUSED)
            return response
        response.flags |= dns.flags.AA
        self._answer(zone, qname, qtype, response)
        return response

    def _answer(
        self,
        zone: dns.zone.Zone,
        qname: dns.name.Name,
        qtype: dns.rdatatype.RdataType,
        response: dns.message.Message,
    ) -> None:
        """Fill ``response`` for ``qname``/``qtype`` in ``zone``, chasing in-zone CNAMEs."""
        name = qname
        for _ in range(MAX_CNAME_CHAIN):
            node = zone.get_node(name)
            if node is None and self._is_empty_non_terminal(zone, name):
                self._add_soa(zone, response)  # the name exists without records: NODATA
                return
            if node is None:
                node = self._wildcard(zone, name)
            if node is None:
                # Also for a dangling in-zone CNAME target (RFC 6604).
                response.set_rcode(dns.rcode.NXDOMAIN)
                self._add_soa(zone, response)
                return
            cname = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.CNAME)
            if cname is not None and qtype not in (dns.rdatatype.CNAME, dns.rdatatype.ANY):
                response.answer.append(self._rrset(name, cname))
                target = cname[0].target
                if not target.is_subdomain(zone.origin) or target == name:
                    return
                name = target
                continue
            if qtype == dns.rdatatype.ANY:
                found = list(node.rdatasets)
            else:
                rds = node.get_rdataset(dns.rdataclass.IN, qtype)
                found = [rds] if rds is not None else []
            if not found:
                self._add_soa(zone, response)  # NODATA
                return
            for rds in found:
                response.answer.append(self._rrset(name, rds))
            return
        response.set_rcode(dns.rcode.SERVFAIL)  # CNAME loop

    @staticmethod
    def _rrset(name: dns.name.Name, rds: dns.rdataset.Rdataset) -> dns.rrset.RRset:
        rrset = dns.rrset.RRset(name, rds.rdclass, rds.rdtype)
        rrset.update(rds)
        return rrset

    @staticmethod
    def _wildcard(zone: dns.zone.Zone, name: dns.name.Name) -> dns.node.Node | None:
        """The ``*`` node at ``name``'s closest encloser, if there is one (RFC 4592)."""
        assert zone.origin is not None
        parent = name
        while parent != zone.origin and len(parent) > len(zone.origin):
            parent = parent.parent()
            if zone.get_node(parent) is not None or DnsServer._is_empty_non_terminal(
                zone, parent
            ):
                break
        return zone.get_node(dns.name.Name(("*", *parent.labels)))

    @staticmethod
    def _is_empty_non_terminal(zone: dns.zone.Zone, name: dns.name.Name) -> bool:
        """True when ``name`` owns no records but names below it do (it "exists")."""
        return any(n != name and n.is_subdomain(name) for n in zone.nodes)

    @staticmethod
    def _add_soa(zone: dns.zone.Zone, response: dns.message.Message) -> None:
        """Put the zone's SOA in authority with the negative-caching TTL (RFC 2308)."""
        assert zone.origin is not None
        soa = zone.get_rdataset(zone.origin, dns.rdatatype.SOA)
        assert soa is not None
        rrset = dns.rrset.RRset(zone.origin, soa.rdclass, soa.rdtype)
        rrset.update(soa)
        rrset.ttl = min(soa.ttl, soa[0].minimum)
        response.authority.append(rrset)

    @staticmethod
    def _formerr(wire: bytes) -> bytes | None:
        """A FORMERR echoing the id of an unparsable query, or None if even that is absent."""
        if len(wire) < 12:
            return None
        msg_id, flags = struct.unpack("!HH", wire[:4])
        if flags & 0x8000:  # a response, not a query: never answer it
            return None
        reply = flags | 0x8000
        reply = (reply & ~0x000F) | dns.rcode.FORMERR
        return struct.pack("!HHHHHH", msg_id, reply & 0xFFFF, 0, 0, 0, 0)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = self.server.handle(data, "udp")
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


async def _serve_tcp_client(
    server: DnsServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Answer length-prefixed queries on one TCP connection until the client closes it."""
    try:
        while True:
            try:
                (length,) = struct.unpack("!H", await reader.readexactly(2))
                data = await reader.readexactly(length)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            reply = server.handle(data, "tcp")
            if reply is None:
                continue  # injected timeout: say nothing, keep the connection
            writer.write(struct.pack("!H", len(reply)) + reply)
            await writer.drain()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def serve(
    server: DnsServer, host: str = LOOPBACK, port: int = 5353
) -> tuple[asyncio.DatagramTransport, asyncio.Server]:
    """Listen on UDP and TCP ``host:port`` on the running loop; returns both handles."""
    loop = asyncio.get_running_loop()
    udp, _ = await loop.create_datagram_endpoint(
        lambda: _UdpProtocol(server), local_addr=(host, port)
    )
    tcp = await asyncio.start_server(
        lambda r, w: _serve_tcp_client(server, r, w), host=host, port=port
    )
    return udp, tcp


async def _main_async(server: DnsServer, host: str, port: int) -> None:
    udp, tcp = await serve(server, host, port)
    await serve_until_signalled(f"ready {host}:{port}")
    udp.close()
    tcp.close()
    await tcp.wait_closed()


def main(argv: Sequence[str] | None = None) -> None:
    """CLI entry point: serve the zones until SIGINT/SIGTERM (or stdin EOF with the flag)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zones", default=str(default_zones_dir()),
                        help="directory of *.zone master files")
    parser.add_argument("--host", default=LOOPBACK)
    parser.add_argument("--port", type=int, default=5353)
    parser.add_argument("--fault", action="append", default=[], metavar="NAME/TYPE=KIND",
                        help="inject a fault: KIND is timeout, servfail or nxdomain; TYPE may be *")
    parser.add_argument("--closed-world", action="store_true",
                        help="answer NXDOMAIN, not REFUSED, for names outside the zones")
    parser.add_argument("--exit-on-stdin-eof", action="store_true",
                        help="exit when stdin closes (the parent died)")
    args = parser.parse_args(argv)
    zones = load_zones(args.zones)
    if not zones:
        parser.error(f"no *.zone files in {args.zones}")
    faults = dict(parse_fault(f) for f in args.fault)
    if args.exit_on_stdin_eof:
        exit_when_stdin_closes()
    server = DnsServer(zones, faults, closed_world=args.closed_world)
    asyncio.run(_main_async(server, args.host, args.port))


@contextlib.contextmanager
def start_dns_server(
    zones_dir: str | os.PathLike[str] | None = None,
    port: int | None = None,
    *,
    faults: Mapping[tuple[str, str], Fault] | None = None,
    closed_world: bool = False,
    timeout: float = 15.0,
) -> Iterator[tuple[str, int]]:
    """Run the DNS server as a child process for the ``with`` block; yields ``(host, port)``.

    ``zones_dir`` defaults to the package's zones; ``faults`` maps ``(name, TYPE)`` to
    ``"timeout"`` or ``"servfail"``.
    """
    zones_dir = Path(zones_dir) if zones_dir is not None else default_zones_dir()
    port = port or free_port("both")
    argv = [sys.executable, "-m", "streams.embedded.dns_server", "--zones", str(zones_dir),
            "--port", str(port), "--exit-on-stdin-eof"]
    for (name, rdtype), kind in (faults or {}).items():
        argv += ["--fault", f"{name}/{rdtype}={kind}"]
    if closed_world:
        argv.append("--closed-world")
    with serving(argv, name=f"dns-{port}", port=port, ready_text=f"ready {LOOPBACK}",
                 timeout=timeout) as address:
        yield address


if __name__ == "__main__":
    main()
