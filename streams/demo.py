"""The whole pipeline on one machine: embedded broker, DNS server, SMTP sink, a worker, a replay.

``run_pipeline`` is what ``sentinelle demo`` and the end-to-end integration test both run.
Everything it starts is stopped when it returns, raises, or is interrupted (Ctrl-C).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from streams import wire
from streams.embedded.broker import start_broker
from streams.embedded.dns_server import start_dns_server
from streams.embedded.procs import (
    ManagedProcess,
    check_interrupted,
    free_port,
    start_process,
    was_interrupted,
)
from streams.embedded.smtp_sink import start_smtp_sink
from streams.outcomes import Ledger, ScenarioResult, scenario_results
from streams.replay.events import ReplayItem
from streams.replay.pacing import schedule
from streams.settings import Settings
from streams.topics import create_topics, topic_specs

ZONES_DIR = Path(__file__).resolve().parent / "embedded" / "zones"
Progress = Callable[[str], None]


@dataclass
class RunResult:
    ledger: Ledger
    scenarios: list[ScenarioResult]
    produced: int
    settings: Settings
    smtp_dir: Path
    seconds: float


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def embedded_services(run_dir: Path) -> Iterator[dict[str, str]]:
    """Broker, DNS server and SMTP sink on 127.0.0.1; yields the environment that points at them."""
    with (
        start_broker() as bootstrap,
        start_dns_server(ZONES_DIR, closed_world=True) as (dns_host, dns_port),
        start_smtp_sink(run_dir / "smtp") as (smtp_host, smtp_port),
    ):
        yield {
            "SENTINELLE_KAFKA__BOOTSTRAP": bootstrap,
            "SENTINELLE_DNS__NAMESERVERS": f'["{dns_host}"]',
            "SENTINELLE_DNS__PORT": str(dns_port),
            "SENTINELLE_SMTP__HOST": smtp_host,
            "SENTINELLE_SMTP__PORT": str(smtp_port),
            "SENTINELLE_DATA_DIR": str(run_dir / "worker"),
        }


def start_worker(env: dict[str, str], log_dir: Path, name: str = "worker") -> ManagedProcess:
    full_env = {**os.environ, **env}
    return start_process(
        [sys.executable, "-m", "streams.cli", "worker"],
        name=name,
        env=full_env,
        log_dir=log_dir,
        timeout=120.0,
        # Faust logs "[^Worker]: Ready" once its first rebalance and table recovery are done.
        ready=lambda proc: "]: Ready" in proc.output_text(),
    )


def produce(
    bootstrap: str,
    topic: str,
    items: Sequence[ReplayItem],
    speedup: float,
    progress: Progress,
    max_record_bytes: int = 4 * 1024 * 1024,
) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                             max_request_size=max_record_bytes)
    started = time.monotonic()
    step = max(1, len(items) // 20)
    try:
        for n, (offset, item) in enumerate(schedule(items, speedup), start=1):
            check_interrupted()
            delay = started + offset - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            producer.send(topic, key=item.key, value=item.value)
            if n % step == 0 or n == len(items):
                progress(f"replay: {n}/{len(items)} events sent")
        producer.flush(timeout=60)
    finally:
        if was_interrupted():
            abandon(producer)  # the broker is already gone: don't wait on it
        else:
            producer.close(timeout=10)


def abandon(producer: KafkaProducer) -> None:
    """Close a producer whose broker is gone, without waiting and without noise at exit.

    kafka-python's ``close()`` flushes first and, when that times out, gives up before marking
    the producer closed — so its ``__del__`` flushes again at interpreter exit and prints a
    traceback. Force the sender thread down and mark it closed instead.
    """
    with contextlib.suppress(Exception):
        producer.close(timeout=0)
    sender = getattr(producer, "_sender", None)
    if sender is not None and sender.is_alive():
        sender.force_close()
    producer._closed = True


def collect(
    bootstrap: str,
    settings: Settings,
    expected: int,
    timeout_s: float,
    progress: Progress,
    ledger: Ledger | None = None,
    worker: ManagedProcess | None = None,
) -> Ledger:
    """Read outcome topics until every input event is accounted for (or the timeout passes)."""
    ledger = ledger or Ledger()
    names = settings.topics
    handlers: dict[str, Callable[[dict[str, Any]], None]] = {
        names.delivered: ledger.add_delivery,
        names.deadletter: ledger.add_dead_letter,
        names.holds: ledger.add_hold,
        names.alerts: ledger.add_alert,
    }
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             auto_offset_reset="earliest", consumer_timeout_ms=500,
                             max_partition_fetch_bytes=settings.kafka.max_record_bytes)
    try:
        partitions = [TopicPartition(t, p) for t in handlers
                      for p in range(settings.kafka.partitions)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)

        def read(timeout_ms: int) -> None:
            for records in consumer.poll(timeout_ms=timeout_ms).values():
                for record in records:
                    if record.value is not None:
                        handlers[record.topic](wire.loads(record.value))

        deadline = time.monotonic() + timeout_s
        last_report = 0.0
        while time.monotonic() < deadline:
            check_interrupted()
            if worker is not None and not worker.alive():
                raise RuntimeError(f"the worker stopped:\n{worker.stderr_tail(30)}")
            read(500)
            done = ledger.accounted()
            if time.monotonic() - last_report > 2 or done >= expected:
                progress(f"outcomes: {done}/{expected} events accounted for")
                last_report = time.monotonic()
            if done >= expected:
                read(1000)  # a grace period catches late duplicates, a bug to report
                break
    finally:
        consumer.close()
    return ledger


def run_pipeline(
    items: Sequence[ReplayItem],
    run_dir: Path,
    *,
    speedup: float = 0.0,
    timeout_s: float = 600.0,
    progress: Progress = _stderr,
    after: Callable[[dict[str, str], Ledger], None] | None = None,
) -> RunResult:
    """Start everything, replay ``items``, wait for every outcome, stop everything."""
    started = time.monotonic()
    run_dir.mkdir(parents=True, exist_ok=True)
    progress(f"starting embedded broker, DNS server and SMTP sink (logs in {run_dir})")
    with embedded_services(run_dir) as env:
        settings = settings_for(env)
        bootstrap = settings.kafka.bootstrap
        create_topics(bootstrap, topic_specs(settings))
        progress(f"broker at {bootstrap}; {len(topic_specs(settings))} topics created")
        env = {**env, "SENTINELLE_METRICS_PORT": str(free_port())}
        worker = start_worker(env, run_dir)
        try:
            progress(f"worker started (pid {worker.pid}); replaying {len(items)} events")
            produce(bootstrap, settings.topics.outbound, items, speedup, progress,
                    settings.kafka.max_record_bytes)
            ledger = collect(bootstrap, settings, len(items), timeout_s, progress,
                             worker=worker)
            if after is not None:
                after(env, ledger)
        finally:
            worker.stop(timeout=15)
    labelled = [(i.label, i.account_id or "", i.message_id or "") for i in items]
    return RunResult(ledger, scenario_results(ledger, labelled), len(items), settings,
                     run_dir / "smtp", time.monotonic() - started)


def settings_for(env: dict[str, str]) -> Settings:
    """This process's settings, pointed at the embedded services."""
    base = Settings()
    return base.model_copy(
        update={
            "kafka": base.kafka.model_copy(
                update={"bootstrap": env["SENTINELLE_KAFKA__BOOTSTRAP"]}
            ),
            "data_dir": env["SENTINELLE_DATA_DIR"],
        }
    )
