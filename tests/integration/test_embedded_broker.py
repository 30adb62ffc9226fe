"""The embedded Tansu broker: topics, kafka-python and aiokafka round trips, a Faust worker."""

from __future__ import annotations

import json
import sys
import textwrap
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTopicPartition

from streams.embedded.broker import kafka_ready, start_broker
from streams.embedded.procs import ManagedProcess, free_port, managed_process, port_is_open
from streams.topics import TopicMismatchError, TopicSpec, create_topics

pytestmark = pytest.mark.integration


def partitions_of(bootstrap: str, topic: str) -> list[dict[str, object]]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return admin.describe_topics([topic])[0]["partitions"]
    finally:
        admin.close()


def test_start_broker_binds_loopback_and_stops() -> None:
    with start_broker() as bootstrap:
        host, port = bootstrap.rsplit(":", 1)
        assert host == "127.0.0.1"
        assert kafka_ready(bootstrap)
    assert not port_is_open("127.0.0.1", int(port))


def test_create_topics_is_explicit_and_idempotent(broker: str, unique: str) -> None:
    specs = [
        TopicSpec(f"hold-{unique}", 4, 1, {"cleanup.policy": "compact",
                                            "min.insync.replicas": "1"}),
        TopicSpec(f"events-{unique}", 3, 1, {"cleanup.policy": "delete"}),
    ]
    create_topics(broker, specs)
    create_topics(broker, specs)  # already exists: fine
    assert len(partitions_of(broker, f"hold-{unique}")) == 4
    assert len(partitions_of(broker, f"events-{unique}")) == 3
    with pytest.raises(TopicMismatchError, match="has 4 partitions"):
        create_topics(broker, [TopicSpec(f"hold-{unique}", 2)])
    with pytest.raises(ValueError, match="replication 3"):
        create_topics(broker, [TopicSpec(f"r3-{unique}", 1, 3)])


def test_kafka_python_round_trip(broker: str, unique: str) -> None:
    topic = f"kp-{unique}"
    create_topics(broker, [TopicSpec(topic, 2)])
    producer = KafkaProducer(bootstrap_servers=broker, acks="all", linger_ms=5)
    sent = {f"k{i}".encode(): f"v{i}".encode() for i in range(50)}
    for key, value in sent.items():
        producer.send(topic, key=key, value=value)
    producer.flush(10)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=broker, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=5000)
    consumer.assign([KTopicPartition(topic, 0), KTopicPartition(topic, 1)])
    got: dict[bytes, bytes] = {}
    deadline = time.monotonic() + 15
    while len(got) < len(sent) and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            got.update((r.key, r.value) for r in records)
    consumer.close()
    assert got == sent


async def test_aiokafka_round_trip_and_group_commit(broker: str, unique: str) -> None:
    topic, group = f"aio-{unique}", f"g-{unique}"
    create_topics(broker, [TopicSpec(topic, 1)])
    producer = AIOKafkaProducer(bootstrap_servers=broker, enable_idempotence=False)
    await producer.start()
    try:
        for i in range(20):
            await producer.send_and_wait(topic, key=b"s", value=json.dumps({"n": i}).encode())
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=broker, group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                session_timeout_ms=2000, heartbeat_interval_ms=500)
    started = time.monotonic()
    await consumer.start()
    try:
        values: list[int] = []
        while len(values) < 20:
            batch = await consumer.getmany(timeout_ms=1000)
            values += [json.loads(m.value)["n"] for ms in batch.values() for m in ms]
            assert time.monotonic() - started < 20, "group join or fetch too slow"
        await consumer.commit()
        committed = await consumer.committed(TopicPartition(topic, 0))
    finally:
        await consumer.stop()
    assert values == list(range(20))
    assert committed == 20


FAUST_APP = textwrap.dedent(
    """
    import os
    import faust

    app = faust.App(
        os.environ["APP_ID"],
        broker="kafka://" + os.environ["BOOTSTRAP"],
        broker_session_timeout=2,
        broker_heartbeat_interval=0.5,
        web_enabled=False,
        web_host="127.0.0.1",
        web_port=int(os.environ["WEB_PORT"]),
        datadir=os.environ["DATADIR"],
        store="memory://",
        topic_replication_factor=1,
    )
    source = app.topic(os.environ["SRC"], value_serializer="raw", key_serializer="raw")
    sink = app.topic(os.environ["DST"], value_serializer="raw", key_serializer="raw")

    @app.agent(source)
    async def upper(stream):
        async for event in stream.events():
            await sink.send(key=event.key, value=event.value.upper())

    if __name__ == "__main__":
        app.main()
    """
)


def test_faust_worker_joins_and_processes(broker: str, unique: str, tmp_path: Path) -> None:
    src, dst = f"faust-in-{unique}", f"faust-out-{unique}"
    create_topics(broker, [TopicSpec(src, 2), TopicSpec(dst, 2)])
    app_file = tmp_path / "faust_app.py"
    app_file.write_text(FAUST_APP)
    env = {
        "APP_ID": f"it-{unique}", "BOOTSTRAP": broker, "SRC": src, "DST": dst,
        "WEB_PORT": str(free_port()), "DATADIR": str(tmp_path / "data"),
        "PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path),
    }
    argv = [sys.executable, str(app_file), "worker", "--without-web", "-l", "info"]
    started = time.monotonic()

    def ready(proc: ManagedProcess) -> bool:
        return "Ready" in proc.output_text()

    with managed_process(argv, name="faust-worker", env=env, ready=ready, timeout=30,
                         log_dir=tmp_path / "logs") as worker:
        ready_after = time.monotonic() - started
        producer = KafkaProducer(bootstrap_servers=broker, linger_ms=5)
        for i in range(100):
            producer.send(src, key=f"s{i % 7}".encode(), value=f"event-{i}".encode())
        producer.flush(10)
        producer.close()
        consumer = KafkaConsumer(bootstrap_servers=broker, auto_offset_reset="earliest",
                                 enable_auto_commit=False)
        consumer.assign([KTopicPartition(dst, 0), KTopicPartition(dst, 1)])
        out: set[bytes] = set()
        deadline = time.monotonic() + 20
        while len(out) < 100 and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                out.update(r.value for r in records)
        consumer.close()
        assert worker.alive(), worker.stderr_tail()
    assert ready_after < 15, f"worker took {ready_after:.1f}s to be ready"
    assert out == {f"EVENT-{i}".encode() for i in range(100)}
