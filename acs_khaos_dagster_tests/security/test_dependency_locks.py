"""Production installs only what it runs, each file pinned by hash (issue 20, point 8).

``requirements.lock`` held the runtime and the test tools together, without hashes: a
production install carried pytest, ruff, asyncssh, aiosmtpd and pyinstrument, and any
tampered file of the right version would have been installed.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)")
TEST_TOOLS = {
    "pytest",
    "pytest-timeout",
    "ruff",
    "asyncssh",
    "aiosmtpd",
    "pyinstrument",
    "hypothesis",
    "import-linter",
}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lock(name: str) -> dict[str, list[str]]:
    """Each requirement of a lock and the hashes given for it."""
    entries: dict[str, list[str]] = {}
    current: str | None = None
    for line in (ROOT / name).read_text().splitlines():
        found = PIN.match(line)
        if found:
            current = _norm(found.group(1))
            entries[current] = []
        elif current and "--hash=sha256:" in line:
            entries[current].append(line.split("--hash=sha256:")[1].split()[0])
        elif line.strip() and not line.lstrip().startswith("#"):
            raise AssertionError(f"{name}: unexpected line {line!r}")
    return entries


def _requirement_name(spec: str) -> str:
    return _norm(re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0])


def test_the_production_lock_pins_every_file_by_hash_and_holds_no_test_tool() -> None:
    production = _lock("requirements.lock")

    assert production
    assert [name for name, hashes in production.items() if not hashes] == []
    assert sorted(TEST_TOOLS & set(production)) == []
    runtime = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert {_requirement_name(spec) for spec in runtime} <= set(production)
    # The build backend is pinned too: building the project downloads nothing unpinned.
    assert {"setuptools", "wheel"} <= set(production)


def test_the_test_tools_have_their_own_hashed_lock_on_top_of_production() -> None:
    production = _lock("requirements.lock")
    development = _lock("requirements-dev.lock")

    assert set(development) >= TEST_TOOLS
    assert [name for name, hashes in development.items() if not hashes] == []
    assert set(production) & set(development) == set()


def test_the_makefile_installs_with_require_hashes() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "--require-hashes -r requirements.lock -r requirements-dev.lock" in makefile
    assert "--no-build-isolation" in makefile


def test_everything_installed_here_came_from_the_two_locks() -> None:
    locked = set(_lock("requirements.lock")) | set(_lock("requirements-dev.lock"))
    installed = {_norm(d.metadata["Name"]) for d in metadata.distributions()}
    # pip is the installer; the project is installed from this checkout.
    assert installed - locked - {"pip", "acs-khaos-dagster"} == set()
