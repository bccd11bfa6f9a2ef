"""Settings of the two systems the integration talks to (ACS, Khaos Control) and of its
HTTP clients, and the rule every API base URL follows."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator

from acs_khaos_dagster.domain.layout import KhaosReasons, KhaosSites, KhaosStages


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def require_https_unless_loopback(value: str) -> str:
    """An API base URL: ``https://``, or plain ``http://`` to a loopback address (the sandbox).

    Over plain HTTP the ACS subscription key and the Khaos password would cross the network
    in clear. The message never repeats the URL (pydantic would print it back).
    """
    parts = urlsplit(value.strip())
    if parts.scheme == "https" and parts.hostname:
        return value.strip()
    if parts.scheme == "http" and is_loopback_host(parts.hostname):
        return value.strip()
    raise ValueError("must be an https:// URL (plain http:// only to a loopback address)")


class AcsSettings(BaseModel):
    """The ACS partner API and file drop."""

    base_url: str = "http://127.0.0.1:8701"
    subscription_key: SecretStr = SecretStr("sandbox-acs-key")
    account_code: str = Field("BRAND01", min_length=1, max_length=20, pattern=r"^[A-Za-z0-9_-]+$")
    # Relative to the data folder unless absolute.
    drop_folder: Path = Path("acs_drop")
    page_size: int = Field(500, ge=1, le=5000)

    # --- how this ACS account writes times (docs/go-live-checklist.md) ---
    # A time with an offset or "Z" is read as written. One without: UK wall-clock time
    # (ACS is a UK warehouse; the same as UTC in winter) unless this says "utc".
    time_without_offset: Literal["uk_local", "utc"] = "uk_local"
    # Dates written dd/mm/yyyy (UK order). Off: such a value is quarantined with its row,
    # the reason naming this setting; never guessed as mm/dd.
    dates_day_first: bool = False

    @field_validator("base_url")
    @classmethod
    def _https_unless_loopback(cls, value: str) -> str:
        return require_https_unless_loopback(value)


class KhaosSettings(BaseModel):
    """The Khaos Control SOAP service."""

    base_url: str = "http://127.0.0.1:8702"
    exe_name: str = Field("KhaosControlWeb", pattern=r"^[A-Za-z0-9_.-]+$")
    username: str = "integration"
    password: SecretStr = SecretStr("sandbox-khaos-password")
    sites: KhaosSites = KhaosSites()
    stages: KhaosStages = KhaosStages()
    export_batch_size: int = Field(100, ge=1, le=100)

    # --- what this install exposes and names (docs/go-live-checklist.md) ---
    # "level": ExportStockStatus carries Level. "available_plus_allocated": it gives only
    # Available and OnOrder; Level is Available + what open invoices at the site allocate.
    stock_level_source: Literal["level", "available_plus_allocated"] = "level"
    # Invoice stages whose invoices allocate stock (not cancelled, not issued).
    allocating_stages: tuple[int, ...] = tuple(range(9, 22))
    # Adjustment reason codes and return reasons (with their processing types).
    reasons: KhaosReasons = KhaosReasons()
    # ExternalRef, GroupRef, AssociatedRef, URN, ConsignmentRef, CourierCode, reason codes.
    reference_max_length: int = Field(50, ge=1, le=255)

    @field_validator("base_url")
    @classmethod
    def _https_unless_loopback(cls, value: str) -> str:
        return require_https_unless_loopback(value)

    @property
    def soap_url(self) -> str:
        return f"{self.base_url.rstrip('/')}/{self.exe_name}.exe/soap/IKosWeb"


class HttpSettings(BaseModel):
    """Timeouts and retry limits of the HTTP clients (reads only; writes go via the outbox)."""

    connect_timeout_s: float = Field(5.0, gt=0)
    read_timeout_s: float = Field(30.0, gt=0)
    max_connections: int = Field(10, ge=1)
    read_retries: int = Field(4, ge=0)
    backoff_initial_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(30.0, ge=0)
    verify_tls: bool = True

    @property
    def longest_request_s(self) -> float:
        """The longest one request can be under way once a client starts it: waiting for a
        pooled connection, connecting, writing and reading (httpx gives the pool wait, the
        write and the read each ``read_timeout_s``)."""
        return self.connect_timeout_s + 3 * self.read_timeout_s

    @property
    def longest_read_s(self) -> float:
        """The longest a read with all its retries can take (every attempt runs out its
        timeouts, every backoff waits its cap)."""
        attempts = self.read_retries + 1
        return attempts * self.longest_request_s + self.read_retries * self.backoff_max_s
