"""The file a report link in an asset's metadata opens: what the webserver's ``/files/`` serves."""

from pathlib import Path
from urllib.parse import unquote

from acs_khaos_dagster.report_files import served_path


def served_file(data_dir: Path, url: str) -> Path:
    assert url.startswith("/files/"), url
    found = served_path(data_dir, unquote(url.removeprefix("/files/")))
    assert found is not None, url
    return found
