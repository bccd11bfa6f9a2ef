"""Settings of the flows: products, orders, stock, returns, freshness deadlines, the
outbox, the owner teams' targets and what is kept how long."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

# A known_hosts key without its host part: "<key type> <base64 key>".
_HOST_KEY = re.compile(r"(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+={0,3}")


class OwnerTargets(BaseModel):
    """Hours within which each owner team aims to close its exceptions."""

    operations: float = Field(4.0, gt=0)
    finance: float = Field(24.0, gt=0)
    ecommerce: float = Field(8.0, gt=0)
    integration: float = Field(2.0, gt=0)

    def for_owner(self, owner: str) -> float:
        return float(getattr(self, owner, self.integration))


class ProductSettings(BaseModel):
    # Warn when fewer web-published SKUs than this share are ready for sale at ACS.
    coverage_warn_below: float = Field(0.98, ge=0, le=1)
    # Warn when more than this share of the Khaos SKUs on sale (not discontinued) are not
    # ready for sale at ACS (``ready_for_sale_skus``'s check; the list is ecommerce's).
    not_ready_warn_above: float = Field(0.05, ge=0, le=1)
    # When ``product_sync_schedule`` reads Khaos's SKU master, pushes new and changed SKUs
    # to ACS and refreshes which SKUs are ready for sale (UK time). Order release and the
    # stock push read the latter, so without it nothing is released on a fresh install.
    sync_cron: str = "*/15 * * * *"


class OrderSettings(BaseModel):
    """Order release and despatch feedback."""

    # The seed's "how often outbound orders post to ACS".
    release_interval_s: int = Field(300, ge=15)
    # The despatch sensor only decides whether to start a run; the run posts. Each tick is
    # one read of ACS's feed from the stored cursor (one page when nothing is new).
    # Dagster's sensor daemon looks at the sensors once a loop, every 5 s, and passes over
    # one whose interval has not quite elapsed: at 5 s, a loop starting a few milliseconds
    # early left the feed unread for 10 s. Under 5, every loop reads it (BENCHMARKS.md §9).
    despatch_sensor_interval_s: int = Field(4, ge=1)
    despatch_page_size: int = Field(200, ge=1, le=5000)


class FreshnessSettings(BaseModel):
    """When each day's data must be in, as cron expressions in UK time (the UI flags a late
    partition; ``defs/freshness.py``)."""

    # ACS drops a stock file every trading morning.
    snapshot_due: str = "0 9 * * 1-6"
    # The nightly reconciliation (02:30) of the day before is done by this time.
    reconciliation_due: str = "0 6 * * *"


class StockSettings(BaseModel):
    """ACS snapshots to Khaos Level (see ARCHITECTURE "Stock arithmetic")."""

    # Plausibility guard against the last accepted snapshot (a truncated file must
    # never zero the website).
    max_total_drop: float = Field(0.10, ge=0, le=1)
    max_sellable_drop: float = Field(0.20, ge=0, le=1)
    max_unknown_share: float = Field(0.02, ge=0, le=1)
    # Above this share of a file's rows quarantined, the snapshot's quality check warns.
    max_quarantine_share: float = Field(0.01, ge=0, le=1)
    # Unexplained differences within both limits are pushed as VARIANCE; above, held
    # for finance to approve.
    variance_tolerance_units: int = Field(2, ge=0)
    variance_tolerance_value: Decimal = Field(Decimal("50.00"), ge=0)
    # A held variance above either limit needs a second finance approver
    # (docs/runbooks/stock_variance_held.md).
    second_approval_units: int = Field(20, ge=0)
    second_approval_value: Decimal = Field(Decimal("500.00"), ge=0)
    max_lines_per_adjustment: int = Field(500, ge=1)
    # batch mode: push the newest snapshot on this schedule (Europe/London).
    batch_cron: str = "0 8-20 * * 1-6"
    sftp_host: str | None = None
    sftp_port: int = 22
    sftp_username: str | None = None
    sftp_password: SecretStr | None = None
    sftp_private_key: SecretStr | None = None
    sftp_folder: str = "/outbound"
    # The SFTP server's host key, pinned: a known_hosts-style "<type> <base64>" line (for
    # example "ssh-ed25519 AAAA..."), or a known_hosts file naming the host. A key that is
    # neither is refused: trusting a key on first use would hand the first connection, and
    # the password with it, to whoever answers first.
    sftp_host_key: str | None = None
    sftp_known_hosts: Path | None = None

    @model_validator(mode="after")
    def _sftp_host_key_pinned(self) -> StockSettings:
        if self.sftp_host and not (self.sftp_host_key or self.sftp_known_hosts):
            raise ValueError(
                "SFTP needs the server's host key pinned: set stock.sftp_host_key "
                "or stock.sftp_known_hosts"
            )
        if self.sftp_host_key is not None and not _HOST_KEY.fullmatch(self.sftp_host_key.strip()):
            raise ValueError(
                "stock.sftp_host_key must be a known_hosts key: '<type> <base64>', "
                "for example 'ssh-ed25519 AAAA...'"
            )
        return self


class ReturnSettings(BaseModel):
    """Returns and refunds."""

    refund_days: int = Field(14, ge=1)
    refund_warn_days: int = Field(3, ge=0)
    # Hire StockID -> the StockID the unit is sold under once ex-hired.
    resale_stock_ids: dict[int, int] = Field(default_factory=dict)
    # The used-garment value an ex-hire move carries (both EXHIRE legs), not the hire
    # item's original cost: a share of CostPrice, or a fixed value per hire StockID.
    ex_hire_value_share: Decimal = Field(Decimal("1"), gt=0, le=1)
    ex_hire_unit_values: dict[int, Decimal] = Field(default_factory=dict)

    @field_validator("ex_hire_unit_values")
    @classmethod
    def _non_negative_values(cls, value: dict[int, Decimal]) -> dict[int, Decimal]:
        bad = sorted(k for k, v in value.items() if v < 0)
        if bad:
            raise ValueError(f"ex-hire unit values cannot be negative (StockIDs {bad})")
        return value


class OutboxSettings(BaseModel):
    max_attempts: int = Field(6, ge=1)
    backoff_initial_s: float = Field(2.0, ge=0)
    backoff_max_s: float = Field(600.0, ge=0)
    claim_batch: int = Field(50, ge=1)
    # Sends one dispatcher keeps in flight at once (effects of one business key go one
    # after another). Stay within ``http.max_connections``.
    concurrency: int = Field(8, ge=1)
    # Of those, Khaos imports (not idempotent: ``ImportDespatch``, ``ImportStockAdjustments``,
    # ``ImportCustomerReturns``, ``MoveInvoices``), never two about the same order, stock
    # item, invoice or return at once. 1 sends them one at a time. Khaos' own limits on
    # concurrent imports are unknown, so the default stays small; raise it only once the
    # Khaos server has been seen to take it (docs/outbox.md).
    import_concurrency: int = Field(4, ge=1)
    # After an ambiguous failure (a timeout, a reset, a gateway 5xx) the request may still be
    # applied by the target a while later: the read-back that decides whether to send again
    # waits at least this long, or it could miss the late apply and send twice.
    read_back_after_s: float = Field(30.0, ge=0)
    # A claim lasts ``lease_s`` after its last renewal. A live dispatcher renews every claim
    # it holds each ``heartbeat_s`` (one statement for the whole batch, so ``claim_batch``
    # does not bear on expiry) and again right before each send; only an expired claim can
    # be recovered by another dispatcher. See docs/outbox.md.
    lease_s: float = Field(900.0, gt=0)
    heartbeat_s: float = Field(60.0, gt=0)
    # ``outbox_due_sensor`` looks for due effects this often and starts a dispatch run.
    due_sensor_interval_s: int = Field(30, ge=5)
    # The integration owner is alerted when the oldest due effect has waited this long.
    due_alert_after_s: float = Field(1800.0, gt=0)
    # A refusal for the target's rate limit or call quota (429, a gateway's 403 with
    # Retry-After) is not a failure: the effect is sent again exactly when the target said
    # and the refusal never counts toward ``max_attempts``. A longer ``Retry-After`` is cut
    # to ``rate_limit_wait_max_s`` (the target is simply asked again then); a refusal naming
    # no wait waits about as long as the effect has been refused so far, between
    # ``backoff_initial_s`` and that cap.
    rate_limit_wait_max_s: float = Field(900.0, gt=0)
    # An effect refused for the rate limit without a break for longer than this opens an
    # ``effect_rate_limited`` exception for the integration owner; it closes once the
    # effect gets through.
    rate_limit_alert_after_s: float = Field(3600.0, gt=0)


class RetentionSettings(BaseModel):
    """How long the store keeps customers' personal data in what it has sent, and how long
    the data folder keeps each ACS stock snapshot's files."""

    # After this many days, names, emails, phones, addresses and comments are blanked in
    # the stored bodies of finished order releases and of effects already done (see
    # ``store.retention``). The order numbers, lines and hashes stay, so the audit trail
    # and reconciliation still hold.
    personal_data_days: int = Field(90, ge=1)
    # A stock snapshot's files (every unit, and what placing and pushing it kept) are
    # removed once it is this many days older than the newest snapshot, unless something
    # still needs them (``flows.snapshot_retention``, docs/store-archiving.md): the newest
    # and the last pushed snapshot, one the hire lifecycle has not folded yet, and the
    # per-status counts of each day's snapshot until its month's final pack is built. 35
    # days lets any day of the last month be re-run from its own files.
    snapshot_days: int = Field(35, ge=1)
