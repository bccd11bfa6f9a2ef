"""A deployment of several brands (deploy/README.md "Several brands"): the webserver and the
daemon load the workspace in ``/etc/acs-khaos`` (configuration no release replaces) through
drop-ins, and the single location's code server can be masked.

Read from the files, and checked by ``systemd-analyze verify`` where the machine has it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from acs_khaos_dagster.brands import is_brand_code

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SYSTEMD = DEPLOY / "systemd"
WORKSPACE = "/etc/acs-khaos/workspace.yaml"
TEMPLATE = DEPLOY / "workspace.brands.yaml"
SHARED_UNITS = ("acs-khaos-webserver", "acs-khaos-daemon")
INSTALL_PREFIX = "/opt/acs-khaos-dagster/.venv/bin"


def _drop_in(unit: str) -> Path:
    return SYSTEMD / "brands" / f"{unit}.service.d" / "brands.conf"


def _section(path: Path, name: str) -> list[tuple[str, str]]:
    """``(key, value)`` of a unit file's section in order, repeated keys kept (as systemd
    reads them: an empty value resets a list)."""
    entries, current = [], None
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = line.strip("[]")
        elif current == name:
            key, _, value = line.partition("=")
            entries.append((key, value))
    return entries


def _values(path: Path, section: str, key: str) -> list[str]:
    return [v for k, v in _section(path, section) if k == key]


@pytest.mark.parametrize("unit", SHARED_UNITS)
def test_the_brands_drop_in_runs_the_units_command_on_the_workspace_in_etc(unit: str) -> None:
    (base,) = _values(SYSTEMD / f"{unit}.service", "Service", "ExecStart")
    assert "-w deploy/workspace.yaml" in base
    # An empty ExecStart= first (else systemd refuses a second command), then the unit's
    # own command with the deployment's workspace: nothing else may drift from the unit.
    assert _values(_drop_in(unit), "Service", "ExecStart") == [
        "",
        base.replace("-w deploy/workspace.yaml", f"-w {WORKSPACE}"),
    ]


@pytest.mark.parametrize("unit", SHARED_UNITS)
def test_the_units_only_want_the_single_code_server_so_that_it_can_be_masked(unit: str) -> None:
    # Requires= on a masked unit fails the start; Wants= starts without it.
    path = SYSTEMD / f"{unit}.service"
    assert "acs-khaos-code-server.service" in _values(path, "Unit", "Wants")
    assert _values(path, "Unit", "Requires") == []


def _workspace_check(unit: str) -> str:
    (check,) = [c for c in _values(_drop_in(unit), "Service", "ExecStartPre") if WORKSPACE in c]
    assert check.startswith("+/bin/sh -c ")  # "+": as root, before dropping to acs-khaos
    return check.removeprefix("+/bin/sh -c ").strip("'").replace("%%", "%")


@pytest.mark.parametrize("unit", SHARED_UNITS)
def test_the_units_refuse_a_workspace_that_is_missing_or_others_may_change(
    unit: str, tmp_path: Path
) -> None:
    """The workspace names the code servers whose code the UI and the runs trust."""
    workspace = tmp_path / "workspace.yaml"
    script = _workspace_check(unit).replace(WORKSPACE, str(workspace))

    def starts() -> bool:
        return subprocess.run(["/bin/sh", "-c", script], capture_output=True).returncode == 0

    assert not starts()  # missing
    workspace.write_text("load_from: []\n")
    if workspace.owner() == "root":
        workspace.chmod(0o644)
        assert starts()
    for mode in (0o664, 0o646, 0o666):
        workspace.chmod(mode)
        assert not starts(), oct(mode)


def test_the_webserver_drop_in_reads_the_ui_stores_secrets_from_a_root_only_file() -> None:
    drop_in = _drop_in("acs-khaos-webserver")
    assert _values(drop_in, "Service", "EnvironmentFile") == ["/etc/acs-khaos/ui.env"]
    assert any(
        '/etc/acs-khaos/ui.env)" = 600:root' in c
        for c in _values(drop_in, "Service", "ExecStartPre")
    )


def test_systemd_accepts_the_units_with_their_brands_drop_ins(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed: the drop-ins are checked by reading them")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("dagster-daemon", "acs-khaos"):
        (bin_dir / name).write_text("#!/bin/sh\n")
        (bin_dir / name).chmod(0o755)
    units = []
    for unit in SHARED_UNITS:
        copy = tmp_path / f"{unit}.service"
        copy.write_text((SYSTEMD / copy.name).read_text().replace(INSTALL_PREFIX, str(bin_dir)))
        (tmp_path / f"{unit}.service.d").mkdir()
        text = _drop_in(unit).read_text().replace(INSTALL_PREFIX, str(bin_dir))
        (tmp_path / f"{unit}.service.d" / "brands.conf").write_text(text)
        units.append(str(copy))
    result = subprocess.run(
        [analyze, "verify", "--man=no", *units],
        env={"SYSTEMD_UNIT_PATH": f"{tmp_path}:", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_the_workspace_template_is_a_dagster_workspace_of_brand_code_servers() -> None:
    from dagster._core.workspace.config_schema import ensure_workspace_config

    config = yaml.safe_load(TEMPLATE.read_text())
    ensure_workspace_config(config, str(TEMPLATE))  # Dagster's own schema
    unit = (SYSTEMD / "brands" / "acs-khaos-brand@.service").read_text()
    (socket,) = re.findall(r"--socket (\S+)", unit)
    assert config["load_from"]
    for entry in config["load_from"]:
        # A code server's socket only: a python_module entry would load code in the
        # webserver's and daemon's own processes, with their environment.
        (server,) = entry.values()
        assert set(entry) == {"grpc_server"} and set(server) == {"socket", "location_name"}
        assert is_brand_code(server["location_name"])
        assert server["socket"] == socket.replace("%i", server["location_name"])


def test_the_readme_keeps_a_brand_in_etc_and_names_only_files_the_release_has() -> None:
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    brands = readme[readme.index("## Several brands") :]
    add = brands[brands.index("**Add a brand**") : brands.index("**Scaling out")]
    assert WORKSPACE in add and "workspace.brands.yaml" not in add
    assert f"deploy/workspace.brands.yaml {WORKSPACE}" in brands  # installed from the template
    for unit in SHARED_UNITS:
        assert str(_drop_in(unit).relative_to(ROOT)).replace(unit, "$unit") in brands
    assert "systemctl mask acs-khaos-code-server" in brands
    named = set(re.findall(r"`(deploy/[\w./@-]+)", readme)) | set(
        re.findall(r"\s(deploy/[\w./@-]+\.\w+)", readme)
    )
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert missing == []
