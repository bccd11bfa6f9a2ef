"""The settings model: defaults, file and environment, validation, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from acs_khaos_dagster.config import SettingsError, load_settings, setting_at_load


def test_defaults_point_at_the_sandbox_in_uk_time() -> None:
    settings = load_settings()
    assert settings.time_zone == "Europe/London"
    assert settings.khaos.stages.released == 9
    assert settings.khaos.stages.acknowledged == 12
    assert settings.http.verify_tls is True


def test_environment_overrides_nested_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACS_KHAOS_KHAOS__SITES__SELLING", "11")
    monkeypatch.setenv("ACS_KHAOS_ACS__ACCOUNT_CODE", "CASTORE")
    settings = load_settings()
    assert settings.khaos.sites.selling == 11
    assert settings.acs.account_code == "CASTORE"


def test_yaml_file_is_read_and_environment_wins_over_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text("acs:\n  account_code: FROMFILE\nhttp:\n  read_timeout_s: 12\n")
    monkeypatch.setenv("ACS_KHAOS_HTTP__READ_TIMEOUT_S", "7")
    # load_settings(config) names the file in the environment for the whole process: an
    # empty value recorded first makes monkeypatch remove it again after the test (a
    # delenv of an unset variable records nothing, and the file leaked into later tests).
    monkeypatch.setenv("ACS_KHAOS_CONFIG_FILE", "")
    settings = load_settings(config)
    assert settings.acs.account_code == "FROMFILE"
    assert settings.http.read_timeout_s == 7


def test_invalid_setting_fails_with_a_message_naming_the_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACS_KHAOS_HTTP__READ_TIMEOUT_S", "-3")
    with pytest.raises(SettingsError, match=r"http\.read_timeout_s"):
        load_settings()


def test_unknown_time_zone_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACS_KHAOS_TIME_ZONE", "Mars/Olympus_Mons")
    with pytest.raises(SettingsError, match="time_zone"):
        load_settings()


def test_two_stock_buckets_on_one_khaos_site_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACS_KHAOS_KHAOS__SITES__QUARANTINE", "1")
    with pytest.raises(SettingsError, match="distinct"):
        load_settings()


def test_secrets_never_appear_when_settings_are_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACS_KHAOS_ACS__SUBSCRIPTION_KEY", "sk-live-very-secret")
    monkeypatch.setenv("ACS_KHAOS_KHAOS__PASSWORD", "hunter2-very-secret")
    monkeypatch.setenv("ACS_KHAOS_DATABASE_URL", "postgresql://u:dbpass-very-secret@h/db")
    settings = load_settings()
    printed = repr(settings) + str(settings) + settings.model_dump_json()
    for secret in ("sk-live-very-secret", "hunter2-very-secret", "dbpass-very-secret"):
        assert secret not in printed
    assert settings.acs.subscription_key.get_secret_value() == "sk-live-very-secret"


def test_the_default_lease_outlives_the_longest_read_back_and_send() -> None:
    settings = load_settings()
    talk = settings.http.longest_read_s + settings.http.longest_request_s
    assert settings.outbox.lease_s >= talk
    assert settings.outbox.lease_s >= 3 * settings.outbox.heartbeat_s


def test_a_lease_that_two_missed_heartbeats_would_end_is_refused_naming_both(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACS_KHAOS_OUTBOX__HEARTBEAT_S", "400")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "outbox.lease_s" in str(caught.value)
    assert "outbox.heartbeat_s" in str(caught.value)


def test_timeouts_too_long_for_the_lease_are_refused_naming_the_fields(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Five read attempts of 5 + 3 x 120 s each cannot fit in a 15-minute lease.
    monkeypatch.setenv("ACS_KHAOS_HTTP__READ_TIMEOUT_S", "120")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "outbox.lease_s" in message
    assert "http.read_timeout_s" in message and "http.read_retries" in message


def test_the_install_names_its_own_codes_and_return_reasons(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACS_KHAOS_KHAOS__REASONS__WRITE_OFF", "wo")
    monkeypatch.setenv(
        "ACS_KHAOS_KHAOS__REASONS__RETURN_REASONS",
        '{"RTS": "return_to_stock", "SCRAP": "write_off"}',
    )
    monkeypatch.setenv(
        "ACS_KHAOS_GRADE_POLICY",
        '{"rules": {"A": {"return_reason": "RTS", "credit_mode": "auto"}},'
        ' "hire_return_reason": "SCRAP"}',
    )
    settings = load_settings()
    assert settings.khaos.reasons.write_off == "WO"
    assert settings.khaos.reasons.returned_to_stock == {"RTS"}
    rule = settings.grade_policy.rule_for("A")
    assert rule is not None and settings.grade_policy.restocks(rule)


def test_a_grade_policy_naming_a_reason_the_install_lacks_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "ACS_KHAOS_KHAOS__REASONS__RETURN_REASONS",
        '{"RTS": "return_to_stock", "SCRAP": "write_off"}',
    )
    with pytest.raises(SettingsError, match=r"grade_policy.*unknown Khaos return reason 'RESTOCK'"):
        load_settings()  # the default policy posts grade A with RESTOCK


def test_the_stock_level_source_and_acs_time_style_are_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACS_KHAOS_KHAOS__STOCK_LEVEL_SOURCE", "available_plus_allocated")
    monkeypatch.setenv("ACS_KHAOS_ACS__TIME_WITHOUT_OFFSET", "utc")
    monkeypatch.setenv("ACS_KHAOS_ACS__DATES_DAY_FIRST", "true")
    settings = load_settings()
    assert settings.khaos.stock_level_source == "available_plus_allocated"
    assert (settings.acs.time_without_offset, settings.acs.dates_day_first) == ("utc", True)
    monkeypatch.setenv("ACS_KHAOS_KHAOS__STOCK_LEVEL_SOURCE", "available")
    with pytest.raises(SettingsError, match="stock_level_source"):
        load_settings()


def test_snapshot_files_are_kept_35_days_unless_the_setting_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings().retention.snapshot_days == 35
    monkeypatch.setenv("ACS_KHAOS_RETENTION__SNAPSHOT_DAYS", "60")
    assert load_settings().retention.snapshot_days == 60
    monkeypatch.setenv("ACS_KHAOS_RETENTION__SNAPSHOT_DAYS", "0")
    with pytest.raises(SettingsError, match=r"retention\.snapshot_days"):
        load_settings()


def test_every_name_the_settings_module_had_is_still_imported_from_it() -> None:
    import acs_khaos_dagster.config as config

    names = [
        "Settings", "load_settings", "get_settings", "SettingsError", "UK_TIME_ZONE",
        "PROJECT_ROOT", "AcsSettings", "KhaosSettings", "HttpSettings", "OwnerTargets",
        "ProductSettings", "OrderSettings", "FreshnessSettings", "StockSettings",
        "ReturnSettings", "OutboxSettings", "RetentionSettings", "TeamChannels",
        "SmtpSettings", "AlertSettings", "OWNER_TEAMS", "SEVERITIES", "Severity",
        "FALLBACK_TEAM", "is_loopback_host", "require_https_unless_loopback", "KhaosSites",
    ]  # fmt: skip
    assert [n for n in names if not hasattr(config, n)] == []
    assert (config.PROJECT_ROOT / "pyproject.toml").is_file()


def test_a_setting_read_at_load_is_the_configured_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACS_KHAOS_PRODUCTS__SYNC_CRON", "15 6 * * *")
    assert setting_at_load(lambda s: s.products.sync_cron, "default") == "15 6 * * *"


def test_invalid_settings_leave_the_location_loading_on_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every run then fails naming the bad field; the schedules still load.
    monkeypatch.setenv("ACS_KHAOS_HTTP__READ_TIMEOUT_S", "-3")
    assert setting_at_load(lambda s: s.products.sync_cron, "default") == "default"
