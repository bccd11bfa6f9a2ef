"""Settings come from the environment or the code location, never from a UI user.

Issue 20, points 2 and 6: a launchpad user could point ``SettingsResource.config_file``
at any file of the server (its content came back in the step failure) or at a YAML of
their own; and plain ``http://`` was accepted for the APIs that carry the ACS key and
the Khaos password.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import DagsterInvalidConfigError

from acs_khaos_dagster.config import SettingsError, load_settings

SHADOW = (
    "root:$6$Qm9SECRETsalt$Xk3SECRETHASHvalue:19700:0:99999:7:::\ndaemon:*:19700:0:99999:7:::\n"
)


def _load_from(path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ACS_KHAOS_CONFIG_FILE", str(path))
    with pytest.raises(SettingsError) as error:
        load_settings()
    return f"{error.value} {error.value!r} {error.value.__cause__!r} {error.value.__context__!r}"


def test_the_settings_resources_have_no_field_a_launchpad_user_could_set() -> None:
    from acs_khaos_dagster.defs.alerts import NotifierResource
    from acs_khaos_dagster.defs.resources import SettingsResource

    for resource in (SettingsResource, NotifierResource):
        assert resource.model_fields == {}, resource.__name__


def test_a_run_config_naming_a_settings_file_is_refused_before_anything_runs(
    tmp_path: Path,
) -> None:
    from acs_khaos_dagster.definitions import defs

    planted = tmp_path / "planted.yaml"
    planted.write_text("http:\n  verify_tls: false\n")
    job = defs.resolve_job_def("integration_cycle")
    for resource in ("settings", "store", "acs"):
        with pytest.raises(DagsterInvalidConfigError):
            job.execute_in_process(
                run_config={"resources": {resource: {"config": {"config_file": str(planted)}}}}
            )


def test_a_file_that_is_not_settings_never_has_its_content_in_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shadow = tmp_path / "shadow"
    shadow.write_text(SHADOW)

    text = _load_from(shadow, monkeypatch)

    assert "SECRET" not in text and "root" not in text and "daemon" not in text
    assert "unknown setting" in text


def test_a_run_whose_settings_file_is_not_settings_fails_without_its_content_in_the_event_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dagster_instance
) -> None:
    from dagster._serdes import serialize_value

    from acs_khaos_dagster.definitions import defs

    shadow = tmp_path / "shadow"
    shadow.write_text(SHADOW)
    monkeypatch.setenv("ACS_KHAOS_CONFIG_FILE", str(shadow))

    result = defs.resolve_job_def("integration_cycle").execute_in_process(
        instance=dagster_instance, raise_on_error=False
    )

    assert not result.success
    events = "\n".join(serialize_value(entry) for entry in dagster_instance.all_logs(result.run_id))
    assert "SettingsError" in events
    assert "SECRET" not in events and "daemon" not in events


@pytest.mark.parametrize(
    "content",
    [
        "just one line holding SECRETline\n",
        "- SECRETlist\n",
        "acs:\n\tsubscription_key: SECRETtab\n",
        "acs: [SECRETunclosed\n",
        "http:\n  read_timeout_s: SECRETnotanumber\n",
        "returns:\n  resale_stock_ids:\n    'SECRET$key': 3\n",
        "time_zone: SECRET/Zone\n",
        "alerts:\n  finance:\n    email_to: SECRETnotanaddress\n",
    ],
)
def test_an_invalid_settings_file_names_the_problem_and_never_its_content(
    content: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text(content)

    text = _load_from(path, monkeypatch)

    assert "SECRET" not in text
    assert "settings" in text


def test_a_settings_file_that_is_missing_is_an_error_not_silently_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = _load_from(tmp_path / "nowhere.yaml", monkeypatch)
    assert "nowhere.yaml" in text and "not a file" in text


@pytest.mark.parametrize(
    ("variable", "field"),
    [("ACS_KHAOS_ACS__BASE_URL", "acs.base_url"), ("ACS_KHAOS_KHAOS__BASE_URL", "khaos.base_url")],
)
def test_plain_http_to_a_remote_api_is_refused_naming_the_field(
    variable: str, field: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, "http://partner.example/SECRETpath")
    with pytest.raises(SettingsError, match=field.replace(".", r"\.")) as error:
        load_settings()
    assert "https://" in str(error.value)
    assert "SECRETpath" not in str(error.value)


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8701", "http://localhost:8702", "http://[::1]:8701", "https://x.example"],
)
def test_https_or_plain_http_to_loopback_is_accepted(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACS_KHAOS_ACS__BASE_URL", url)
    monkeypatch.setenv("ACS_KHAOS_KHAOS__BASE_URL", url)
    settings = load_settings()
    assert settings.acs.base_url == url
    assert settings.khaos.base_url == url


def test_a_schemeless_or_other_scheme_base_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    for url in ("partner.example", "ftp://partner.example", "https://"):
        monkeypatch.setenv("ACS_KHAOS_ACS__BASE_URL", url)
        with pytest.raises(SettingsError, match=r"acs\.base_url"):
            load_settings()


def test_a_settings_file_others_can_read_is_named_in_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    private, shared = tmp_path / "private.yaml", tmp_path / "shared.yaml"
    for path, mode in ((private, 0o600), (shared, 0o644)):
        path.write_text("acs:\n  account_code: BRAND01\n")
        path.chmod(mode)

    for path in (private, shared):
        monkeypatch.setenv("ACS_KHAOS_CONFIG_FILE", str(path))
        load_settings()

    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert [w for w in warnings if "readable by other users" in w] == [
        f"settings file {shared} is readable by other users (mode 0644): it may hold "
        "secrets; chmod 600 it"
    ]


def test_the_example_production_environment_is_valid_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    example = Path(__file__).resolve().parents[2] / "deploy" / "env.example"
    for line in example.read_text().splitlines():
        if line.startswith("ACS_KHAOS_") and "=" in line:
            name, value = line.split("=", 1)
            monkeypatch.setenv(name, value)

    settings = load_settings()

    assert settings.acs.base_url.startswith("https://")
    assert settings.khaos.base_url.startswith("https://")
    assert settings.retention.personal_data_days == 90
