"""Settings from ``GRIDCASE_*`` environment variables, read once at start-up."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """The engine's configuration. Every field is ``GRIDCASE_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="GRIDCASE_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///var/gridcase.db",
        description="Event store and read models: sqlite:///PATH or postgresql://user:pass@host/db",
    )
    timezone: str = Field(default="Asia/Shanghai", description="The district's time zone: local days and deadlines")
    case_prefix: str = Field(default="SN", pattern=r"^[A-Z]{2,6}$", description="Prefix of case numbers")
    patrol_prefix: str = Field(default="PT", pattern=r"^[A-Z]{2,6}$", description="Prefix of patrol numbers")
    log_format: Literal["console", "json"] = Field(default="console", description="Log lines for people or machines")
    log_level: Literal["debug", "info", "warning", "error"] = "warning"
    kafka_bootstrap_servers: str = Field(default="", description="Kafka brokers, host:port,...; empty: no Kafka")
    kafka_partitions: int = Field(default=6, ge=1, le=1000, description="Partitions of a topic the relay creates")
    kafka_client_id: str = Field(default="gridcase", min_length=1, description="Client id the Kafka clients give")
    relay_lease_seconds: float = Field(
        default=15.0, ge=1, le=600, description="One relay per store: a killed relay's lease lapses after this long"
    )
    kafka_max_message_bytes: int = Field(
        default=1_048_576,
        ge=10_000,
        le=1_073_741_824,
        description="The largest message the Kafka brokers take (their message.max.bytes); the relay dead-letters "
        "a larger one",
    )
    max_event_bytes: int = Field(
        default=900_000,
        ge=10_000,
        le=1_073_741_824,
        description="The largest event the engine stores, as it will be published (stored JSON plus the envelope "
        "margin); a command whose event would be larger is refused",
    )
    read_database_url: str = Field(
        default="", description="Where the read models live; empty: the same database as the event store"
    )
    projections_source: Literal["store", "kafka"] = Field(
        default="store",
        description="store: queries catch the read models up from the store; kafka: Kafka-fed projectors keep them",
    )
    query_lag_bound: int = Field(
        default=0,
        ge=0,
        le=1_000_000_000,
        description="A CLI query reads the read models as they are when they are at most this many events behind "
        "the store (and says how far behind on stderr); further behind, it catches them up first. 0: always current",
    )

    master_key: SecretStr | None = Field(
        default=None,
        description="Master key of personal data (base64 of 32 bytes); the citizens' data keys are wrapped under it",
    )
    master_key_file: Path | None = Field(
        default=None,
        description="A file holding the master key (base64); on SQLite with neither set, <database>.master-key "
        "is made on first run",
    )

    # -- HTTP under hostile clients (issue 13) ---------------------------------------------------------
    http_public_rate: float = Field(
        default=10.0,
        gt=0,
        le=10_000,
        description="Public reads (Open311 GETs, track, token-less GETs) a client address may make per second",
    )
    http_public_burst: int = Field(
        default=40, ge=1, le=100_000, description="Public reads a client address may make at once before the rate"
    )
    http_public_threads: int = Field(
        default=2, ge=1, le=64, description="Public reads served at the same time (the rest wait; writes never do)"
    )
    http_idempotency_lease_seconds: float = Field(
        default=30.0,
        ge=1,
        le=3600,
        description="How long an Idempotency-Key stays claimed by a request that never finished (a killed server)",
    )

    check_code_secret: str = Field(
        default="",
        description="Secret of the check codes citizens get at intake (track needs number + code); empty on "
        "SQLite: a generated file next to the database (<db>.check-code-secret, 0600)",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (LookupError, ValueError):  # ZoneInfoNotFoundError is a KeyError, which pydantic would not catch
            msg = f"{value!r} is not a time zone (e.g. Asia/Shanghai)"
            raise ValueError(msg) from None
        return value

    @field_validator("database_url", "read_database_url")
    @classmethod
    def _known_scheme(cls, value: str, info: ValidationInfo) -> str:
        if value == "" and info.field_name == "read_database_url":
            return value
        if not value.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://", "postgres://")):
            name = f"GRIDCASE_{(info.field_name or '').upper()}"
            msg = f"{name} must start with sqlite:// or postgresql://, got {value!r}"
            raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _events_fit_on_kafka(self) -> Settings:
        if self.max_event_bytes > self.kafka_max_message_bytes:
            msg = (f"GRIDCASE_MAX_EVENT_BYTES ({self.max_event_bytes}) must not exceed "
                   f"GRIDCASE_KAFKA_MAX_MESSAGE_BYTES ({self.kafka_max_message_bytes}): "
                   "a stored event must fit in one Kafka message")  # fmt: skip
            raise ValueError(msg)
        return self

    @property
    def read_url(self) -> str:
        """The read models' database."""
        return self.read_database_url or self.database_url

    @property
    def kafka_enabled(self) -> bool:
        """Whether a Kafka cluster is configured."""
        return bool(self.kafka_bootstrap_servers.strip())

    @property
    def tz(self) -> ZoneInfo:
        """The district's time zone."""
        return ZoneInfo(self.timezone)

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file when the store is SQLite, else None."""
        if not self.database_url.startswith("sqlite://"):
            return None
        return Path(self.database_url.removeprefix("sqlite:///").removeprefix("sqlite://"))


def check_code_secret(settings: Settings) -> bytes:
    """The check codes' secret: ``GRIDCASE_CHECK_CODE_SECRET``, else a file made once (0600) beside the database.

    On SQLite the file is ``<db>.check-code-secret``; on PostgreSQL without the setting, ``var/check-code-secret``
    under the working directory. Losing or changing the secret changes every citizen's check code.
    """
    if settings.check_code_secret:
        return settings.check_code_secret.encode("utf-8")
    db = settings.sqlite_path
    path = Path(f"{db}.check-code-secret") if db is not None and str(db) not in ("", ":memory:") else None
    if path is None:
        path = Path("var/check-code-secret")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first: read theirs
        else:
            with os.fdopen(fd, "w") as file:
                file.write(secrets.token_hex(32))
    return path.read_text(encoding="utf-8").strip().encode("utf-8")
