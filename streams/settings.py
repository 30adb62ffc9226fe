"""One frozen Settings object, from the environment (prefix ``SENTINELLE_``, nested with ``__``).

Every process — worker, replay, demo, CLI — builds its configuration from here, never from
scattered ``os.getenv`` calls. ``.env.example`` lists every variable with its default.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSettings(BaseModel, frozen=True):
    bootstrap: str = "127.0.0.1:9092"
    acks: Literal["all", "1", "0"] = "all"
    replication_factor: int = 1
    min_insync_replicas: int = 1
    partitions: int = 4
    # Short timeouts make group joins on the embedded broker take ~1 s instead of ~30 s
    # (Tansu holds a JoinGroup for about half the session timeout). Too aggressive for production.
    session_timeout_s: float = 2.0
    heartbeat_interval_s: float = 0.5
    commit_interval_s: float = 0.5
    # Largest record a topic takes and a producer sends: an allowed message, base64-encoded in
    # its event, and again inside a dead-letter record, must fit (~1.8x max_message_bytes).
    max_record_bytes: int = 4 * 1024 * 1024


class TopicNames(BaseModel, frozen=True):
    outbound: str = "sentinelle.outbound.v1"
    accepted: str = "sentinelle.accepted.v1"
    authenticated: str = "sentinelle.authenticated.v1"
    verdicts: str = "sentinelle.verdicts.v1"
    alerts: str = "sentinelle.alerts.v1"
    holds: str = "sentinelle.holds.v1"
    deadletter: str = "sentinelle.deadletter.v1"
    delivered: str = "sentinelle.delivered.v1"


class DnsSettings(BaseModel, frozen=True):
    # Empty means the system resolver configuration (/etc/resolv.conf).
    nameservers: list[str] = Field(default_factory=list)
    port: int = 53
    timeout_s: float = 2.0
    cache_size: int = 50_000


class SmtpSettings(BaseModel, frozen=True):
    host: str = "127.0.0.1"
    port: int = 2525
    timeout_s: float = 10.0
    retry_backoff_s: float = 0.5
    retry_backoff_max_s: float = 30.0
    # How long 4xx answers for one message are retried before its recipients count as deferred
    # (dead-lettered for an operator) — so one full mailbox cannot stall every sender.
    retry_deadline_s: float = 30.0


class ModelSettings(BaseModel, frozen=True):
    alert_threshold: float = 4.0
    hold_threshold: float = 8.0
    learn_delay_s: float = 24 * 3600.0


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SENTINELLE_",
        env_nested_delimiter="__",
        env_file=".env",  # optional; the environment wins over it
        frozen=True,
        extra="ignore",
    )

    app_id: str = "sentinelle"
    data_dir: str = "./run/data"
    # Prometheus /metrics of this worker (0 = off). Bind to an internal interface only.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9464
    max_message_bytes: int = 1_048_576
    # Hold a sender whose mail fails these authentication checks.
    hold_on_auth_failure: bool = True
    # DMARC policy discovery: "rfc9989" (DNS tree walk, the current standard) or "rfc7489"
    # (organizational domain from the bundled public suffix list).
    dmarc_mode: Literal["rfc9989", "rfc7489"] = "rfc9989"
    kafka: KafkaSettings = KafkaSettings()
    topics: TopicNames = TopicNames()
    dns: DnsSettings = DnsSettings()
    smtp: SmtpSettings = SmtpSettings()
    model: ModelSettings = ModelSettings()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
