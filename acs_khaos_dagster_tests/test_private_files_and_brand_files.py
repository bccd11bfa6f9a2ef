"""Two small file rules:

- ``private_files.py``: folders the integration creates are ``0700`` and its files ``0600``
  from the moment they exist, whatever the umask; a file is written whole or not at all;
- ``brands.py``: a brands folder's codes, a brand's settings file, and its ``.env``
  secrets (``KEY=VALUE`` lines, only ``ACS_KHAOS_*`` keys taken).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from acs_khaos_dagster.brands import (
    BRANDS_DIR_VARIABLE,
    DEFAULT_BRANDS_DIR,
    BrandError,
    brand_codes,
    brand_environment_values,
    brand_file,
    brands_dir,
    read_env_file,
)
from acs_khaos_dagster.private_files import (
    SHARED_FILE,
    create_private,
    private_dir,
    private_partial,
    tighten,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o000, 0o277], ids=["open umask", "strict umask"])
def any_umask(request: pytest.FixtureRequest) -> Iterator[None]:
    """A process whose umask would add nothing, or take the owner's own bits away: the
    modes must come out exactly as the integration asks either way."""
    before = os.umask(request.param)
    try:
        yield
    finally:
        os.umask(before)


# --- private folders and files -------------------------------------------------------------------


def test_every_missing_folder_is_created_private_whatever_the_umask(
    tmp_path: Path, any_umask: None
) -> None:
    private_dir(tmp_path / "a" / "b" / "c")
    assert [mode(tmp_path / p) for p in ("a", "a/b", "a/b/c")] == [0o700, 0o700, 0o700]


def test_a_folder_that_exists_is_left_as_it_is(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o755)
    private_dir(shared / "mine")
    assert (mode(shared), mode(shared / "mine")) == (0o755, 0o700)


def test_a_file_is_created_private_from_the_start(tmp_path: Path, any_umask: None) -> None:
    fd = create_private(tmp_path / "secret")
    os.close(fd)
    assert mode(tmp_path / "secret") == 0o600


def test_a_file_that_exists_is_never_created_over(tmp_path: Path) -> None:
    (tmp_path / "there").write_text("kept")
    with pytest.raises(FileExistsError):
        create_private(tmp_path / "there")
    assert (tmp_path / "there").read_text() == "kept"


def test_a_file_written_through_a_partial_appears_whole_and_private(
    tmp_path: Path, any_umask: None
) -> None:
    target = tmp_path / "out" / "table.csv"
    with private_partial(target) as partial:
        assert not target.exists()
        partial.write_text("a,b\n1,2\n")
    assert target.read_text() == "a,b\n1,2\n"
    assert (mode(target), mode(target.parent)) == (0o600, 0o700)
    assert [p.name for p in target.parent.iterdir()] == ["table.csv"]


def test_a_failed_write_leaves_the_old_file_and_no_partial(tmp_path: Path) -> None:
    target = tmp_path / "table.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), private_partial(target) as partial:
        partial.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]


def test_a_partial_left_by_a_crash_is_discarded(tmp_path: Path) -> None:
    target = tmp_path / "table.csv"
    stale = tmp_path / f".table.csv.{os.getpid()}.partial"
    stale.write_text("from a crash")
    with private_partial(target) as partial:
        assert partial.read_text() == ""
        partial.write_text("new")
    assert target.read_text() == "new"


def test_the_finance_pack_may_be_readable_by_the_group(tmp_path: Path, any_umask: None) -> None:
    target = tmp_path / "pack.xlsx"
    with private_partial(target, SHARED_FILE) as partial:
        partial.write_bytes(b"x")
    assert mode(target) == 0o640


def test_tightening_takes_off_only_the_extra_permissions(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.write_text("x")
    os.chmod(loose, 0o664)
    tighten(loose)
    assert mode(loose) == 0o600
    narrow = tmp_path / "narrow"
    narrow.write_text("x")
    os.chmod(narrow, 0o400)
    tighten(narrow)
    assert mode(narrow) == 0o400


def test_tightening_never_adds_a_permission_the_file_did_not_have(tmp_path: Path) -> None:
    odd = tmp_path / "odd"
    odd.write_text("x")
    os.chmod(odd, 0o604)
    tighten(odd, SHARED_FILE)
    assert mode(odd) == 0o600


def test_tightening_a_missing_file_or_a_folder_does_nothing(tmp_path: Path) -> None:
    tighten(tmp_path / "missing")
    folder = tmp_path / "folder"
    folder.mkdir()
    os.chmod(folder, 0o755)
    tighten(folder)
    assert mode(folder) == 0o755


# --- brand files ---------------------------------------------------------------------------------


def test_the_brands_folder_is_the_one_given_else_the_environments_else_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(BRANDS_DIR_VARIABLE, raising=False)
    assert brands_dir() == DEFAULT_BRANDS_DIR == Path("/etc/acs-khaos/brands")
    monkeypatch.setenv(BRANDS_DIR_VARIABLE, str(tmp_path))
    assert brands_dir() == tmp_path
    assert brands_dir(tmp_path / "given") == tmp_path / "given"


def test_the_brands_are_the_yaml_files_named_by_a_brand_code(tmp_path: Path) -> None:
    for name in ("zeta.yaml", "alpha_1.yaml", "Upper.yaml", "9lives.yaml", "beta.env", "x.yml"):
        (tmp_path / name).write_text("")
    assert brand_codes(tmp_path) == ["alpha_1", "zeta"]


def test_a_brands_folder_that_is_not_a_folder_is_an_error_naming_the_variable(
    tmp_path: Path,
) -> None:
    with pytest.raises(BrandError, match=BRANDS_DIR_VARIABLE):
        brand_codes(tmp_path / "missing")


def test_a_brands_settings_file_is_found_by_its_code(tmp_path: Path) -> None:
    (tmp_path / "acme.yaml").write_text("brand: acme\n")
    assert brand_file("acme", tmp_path) == tmp_path / "acme.yaml"
    with pytest.raises(BrandError, match="no brand other"):
        brand_file("other", tmp_path)


@pytest.mark.parametrize("code", ["../etc", "Acme", "", "a" * 31, "acme.yaml"])
def test_a_brand_code_that_is_not_a_code_is_refused(tmp_path: Path, code: str) -> None:
    with pytest.raises(BrandError, match="lower-case letters, digits and _"):
        brand_file(code, tmp_path)


def test_an_env_file_gives_its_acs_khaos_keys_with_quotes_taken_off(tmp_path: Path) -> None:
    env = tmp_path / "acme.env"
    env.write_text(
        "# secrets of acme\n"
        "\n"
        "ACS_KHAOS_KHAOS__PASSWORD='p=ss word'\n"
        '  ACS_KHAOS_ACS__API_KEY = "k-123"  \n'
        "ACS_KHAOS_EMPTY=\n"
        "PATH=/tmp/evil\n"
        "LD_PRELOAD=/tmp/evil.so\n"
    )
    assert read_env_file(env) == {
        "ACS_KHAOS_KHAOS__PASSWORD": "p=ss word",
        "ACS_KHAOS_ACS__API_KEY": "k-123",
        "ACS_KHAOS_EMPTY": "",
    }


@pytest.mark.parametrize("line", ["ACS_KHAOS_X", "acs_khaos_x=1", "ACS KHAOS=1", "=1"])
def test_a_line_that_is_not_key_equals_value_is_an_error_naming_its_line(
    tmp_path: Path, line: str
) -> None:
    env = tmp_path / "acme.env"
    env.write_text(f"ACS_KHAOS_OK=1\n{line}\n")
    with pytest.raises(BrandError, match=r"acme\.env, line 2: not a KEY=VALUE line"):
        read_env_file(env)


def test_an_env_file_that_cannot_be_read_says_so_without_its_contents(tmp_path: Path) -> None:
    with pytest.raises(BrandError, match=r"cannot read .*\(FileNotFoundError\)"):
        read_env_file(tmp_path / "missing.env")


def test_a_brands_environment_is_its_secrets_and_its_settings_file(tmp_path: Path) -> None:
    settings = tmp_path / "acme.yaml"
    settings.write_text("brand: acme\n")
    (tmp_path / "acme.env").write_text("ACS_KHAOS_KHAOS__PASSWORD=s3cret\n")
    assert brand_environment_values(settings) == {
        "ACS_KHAOS_KHAOS__PASSWORD": "s3cret",
        "ACS_KHAOS_CONFIG_FILE": str(settings),
    }


def test_a_brand_without_secrets_has_only_its_settings_file(tmp_path: Path) -> None:
    settings = tmp_path / "acme.yaml"
    settings.write_text("brand: acme\n")
    assert brand_environment_values(settings) == {"ACS_KHAOS_CONFIG_FILE": str(settings)}
