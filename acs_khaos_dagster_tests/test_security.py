"""Secrets and customers' personal data never leak; TLS verification is on unless turned off.

A full ``integration_cycle`` runs through Dagster against the sandbox under injected
faults (so retries, exceptions and parked effects happen) with distinctive secret values
set through the environment. Afterwards every place a person or another program can
read is scanned: captured logs and output, the Dagster event log of every run (metadata
included), every file under the data folder (reports, parquet), and the store's
exception queue, outbox errors and attempts and audit log.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from acs_khaos_dagster.config import load_settings
from acs_khaos_dagster.connectors.acs.client import AcsClient
from acs_khaos_dagster.connectors.errors import AuthenticationError
from acs_khaos_dagster.connectors.khaos.client import KhaosClient
from acs_khaos_dagster.sandbox.faults import FaultKind, FaultRule
from acs_khaos_dagster.store.schema import AuditEntry, Effect, EffectAttempt, ExceptionRow

SECRETS = {
    "ACS_KHAOS_ACS__SUBSCRIPTION_KEY": "acs-key-7Qx9ZZsecretKEY",
    "ACS_KHAOS_KHAOS__PASSWORD": "khaos-pw-Vv3JJsecretPW",
    "ACS_KHAOS_STOCK__SFTP_PASSWORD": "sftp-pw-Kk8LLsecretSFTP",
    "ACS_KHAOS_ALERTS__INTEGRATION__SLACK_WEBHOOK_URL": (
        "https://hooks.slack.example/services/T0/B0/slackHOOKsecret44"
    ),
    "ACS_KHAOS_ALERTS__OPERATIONS__TEAMS_WEBHOOK_URL": (
        "https://teams.example/webhookb2/teamsHOOKsecret55"
    ),
}
DB_PASSWORD = "db-pw-Mm2NNsecretDB"


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch, fresh_postgres_database: str) -> Iterator[list[str]]:
    """Distinctive secrets in the environment, the store on PostgreSQL with a password.

    The test server trusts loopback, so the password is accepted whatever it is; what
    matters is that it is in the URL the integration holds.
    """
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    url = fresh_postgres_database.replace("postgres@", f"postgres:{DB_PASSWORD}@", 1)
    monkeypatch.setenv("ACS_KHAOS_DATABASE_URL", url)
    yield [*SECRETS.values(), DB_PASSWORD]


@pytest.fixture
def cycle(secrets, integration, caplog: pytest.LogCaptureFixture, capsys):
    """An integration cycle under faults; returns everything that can be read afterwards."""
    from acs_khaos_dagster.definitions import defs

    caplog.set_level(logging.DEBUG)
    box = integration.sandbox
    for faults in (box.acs_faults, box.khaos_faults):
        for kind in (FaultKind.ERROR_5XX, FaultKind.RESET_AFTER, FaultKind.RATE_LIMIT):
            faults.add(FaultRule(kind=kind, rate=0.05, retry_after=0))
    job = defs.resolve_job_def("integration_cycle")
    results = []
    box.acs.write_daily_files()
    results.append(job.execute_in_process(instance=integration.instance, raise_on_error=False))
    out = capsys.readouterr()
    return {"results": results, "logs": caplog.text + out.out + out.err}


def _event_log(instance) -> str:
    from dagster._serdes import serialize_value

    texts = []
    for run in instance.get_runs():
        for entry in instance.all_logs(run.run_id):
            texts.append(serialize_value(entry))
    return "\n".join(texts)


def _data_files(data_dir: Path) -> str:
    return "\n".join(
        path.read_bytes().decode("utf-8", errors="replace")
        for path in data_dir.rglob("*")
        if path.is_file()
    )


def _store_text(integration) -> str:
    texts = []
    with integration.store() as store, store.transaction() as s:
        for row in s.scalars(select(ExceptionRow)):
            texts.append(f"{row.message} {row.details} {row.entity_ref}")
        for row in s.scalars(select(Effect)):
            texts.append(f"{row.last_error} {row.result}")
        for row in s.scalars(select(EffectAttempt)):
            texts.append(f"{row.message} {row.error_class}")
        for row in s.scalars(select(AuditEntry)):
            texts.append(f"{row.actor} {row.action} {row.subject} {row.note} {row.outcome}")
    return "\n".join(texts)


def _leaks(text: str, secrets: list[str]) -> list[str]:
    return [secret for secret in secrets if secret in text]


def test_secrets_are_in_no_log_event_report_exception_or_audit_row(
    cycle, secrets: list[str], integration, tmp_path: Path
) -> None:
    assert cycle["results"]  # a run under faults may fail; what it leaves is scanned all the same
    store_text = _store_text(integration)
    assert store_text.strip(), "the cycles left nothing in the store to scan"
    assert _leaks(cycle["logs"], secrets) == []
    assert _leaks(_event_log(integration.instance), secrets) == []
    assert _leaks(_data_files(tmp_path / "data"), secrets) == []
    assert _leaks(store_text, secrets) == []


def test_no_customer_name_or_address_in_logs_or_dagster_metadata(cycle, integration) -> None:
    customers = integration.sandbox.manifest.customers
    personal = [
        value
        for c in customers
        for value in (
            f"{c.contact.first_name} {c.contact.last_name}",
            c.address.line1,
            c.contact.email,
        )
        if len(value) > 5
    ]
    assert personal
    events = _event_log(integration.instance)
    assert [p for p in personal if p in cycle["logs"]] == []
    assert [p for p in personal if p in events] == []


def test_a_refused_key_or_password_is_never_repeated_in_the_error(
    sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACS_KHAOS_ACS__SUBSCRIPTION_KEY", "wrong-key-Zz1secretWRONG")
    monkeypatch.setenv("ACS_KHAOS_KHAOS__PASSWORD", "wrong-pw-Yy2secretWRONG")
    settings = load_settings()
    with AcsClient.from_settings(settings) as acs, KhaosClient.from_settings(settings) as khaos:
        with pytest.raises(AuthenticationError) as acs_error:
            acs.get_product("ANY-SKU")
        with pytest.raises(AuthenticationError) as khaos_error:
            khaos.get_sites()
    for error, secret in ((acs_error, "Zz1secretWRONG"), (khaos_error, "Yy2secretWRONG")):
        assert secret not in f"{error.value} {error.value!r} {error.value.args}"


def test_tls_verification_is_on_by_default() -> None:
    assert load_settings().http.verify_tls is True


def test_turning_tls_verification_off_logs_a_warning_for_each_client(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("ACS_KHAOS_HTTP__VERIFY_TLS", "false")
    caplog.set_level(logging.WARNING)
    settings = load_settings()
    with AcsClient.from_settings(settings), KhaosClient.from_settings(settings):
        pass
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("TLS certificate verification is OFF for ACS" in w for w in warnings)
    assert any("TLS certificate verification is OFF for Khaos" in w for w in warnings)


def test_tls_verification_on_logs_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    settings = load_settings()
    with AcsClient.from_settings(settings), KhaosClient.from_settings(settings):
        pass
    assert not [r for r in caplog.records if "TLS" in r.getMessage()]


def test_deploy_docs_say_the_ui_has_no_login_and_configure_an_authenticating_proxy() -> None:
    root = Path(__file__).resolve().parent.parent
    readme = (root / "deploy" / "README.md").read_text(encoding="utf-8")
    nginx = (root / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    assert "no authentication" in readme
    assert "auth_basic_user_file" in nginx or "auth_request" in nginx
