"""The faust.App, its topics and tables — wiring only, no logic.

``create_pipeline(settings)`` builds a fresh app (tests give each one unique names); the
``sentinelle worker`` command runs the one built from the environment.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import faust

from streams.auth.dns import DnsResolver
from streams.metrics import Metrics
from streams.settings import Settings
from streams.smtp_client import SmtpHandoff


@dataclass
class Topics:
    outbound: faust.TopicT
    accepted: faust.TopicT
    authenticated: faust.TopicT
    verdicts: faust.TopicT
    alerts: faust.TopicT
    holds: faust.TopicT
    deadletter: faust.TopicT
    delivered: faust.TopicT


@dataclass
class Tables:
    senders: Any  # account_id -> {"model": SenderState dict, "hold": {...} | None}
    holds: Any  # account_id -> last sentinelle.holds.v1 record seen
    hold_states: Any  # hold_id -> "active" | "released" | "rejected"
    parked: Any  # "<account_id>\x1f<seq>" -> parked verdict, in arrival order
    parked_index: Any  # account_id -> {"first": int, "next": int}
    outcomes: Any  # "<account_id>\x1f<message_id>" -> outcome (the idempotency registry)


@dataclass
class Pipeline:
    app: faust.App
    settings: Settings
    topics: Topics
    tables: Tables
    metrics: Metrics
    resolver: DnsResolver
    smtp: SmtpHandoff
    # Deliver and hold agents share parked mail; one lock per sender keeps its order.
    locks: defaultdict[str, asyncio.Lock] = field(default_factory=lambda: defaultdict(asyncio.Lock))


def create_pipeline(settings: Settings, metrics: Metrics | None = None) -> Pipeline:
    kafka = settings.kafka
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{kafka.bootstrap}",
        store="memory://",
        autodiscover=False,
        datadir=settings.data_dir,
        topic_partitions=kafka.partitions,
        topic_replication_factor=kafka.replication_factor,
        topic_allow_declare=True,  # changelog topics only; ours are created from the catalogue
        broker_session_timeout=kafka.session_timeout_s,
        broker_heartbeat_interval=kafka.heartbeat_interval_s,
        broker_commit_interval=kafka.commit_interval_s,
        producer_acks=-1 if kafka.acks == "all" else int(kafka.acks),
        producer_max_request_size=kafka.max_record_bytes,
        consumer_max_fetch_size=kafka.max_record_bytes,
        web_enabled=False,  # and `--without-web`: Faust's web server would bind 0.0.0.0:6066
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="json",
        table_standby_replicas=0,
    )

    def topic(name: str) -> faust.TopicT:
        return app.topic(
            name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=kafka.partitions,
        )

    names = settings.topics
    topics = Topics(**{role: topic(name) for role, name in names.model_dump().items()})

    def table(name: str) -> Any:
        return app.Table(
            name,
            default=None,
            partitions=kafka.partitions,
            key_type=str,  # values: plain JSON dicts (the app's default value serializer)
        )

    tables = Tables(
        senders=table("senders"),
        holds=table("holds"),
        hold_states=table("hold-states"),
        parked=table("parked"),
        parked_index=table("parked-index"),
        outcomes=table("outcomes"),
    )
    resolver = DnsResolver(
        settings.dns.nameservers or None,
        port=settings.dns.port,
        timeout=settings.dns.timeout_s,
        cache_size=settings.dns.cache_size,
    )
    pipeline = Pipeline(
        app, settings, topics, tables, metrics or Metrics(), resolver, SmtpHandoff(settings.smtp)
    )
    # Stages register their agents in data-flow order.
    from streams import authenticate, deliver, hold, ingest, score

    for stage in (ingest, authenticate, score, hold, deliver):
        stage.attach(pipeline)
    return pipeline
