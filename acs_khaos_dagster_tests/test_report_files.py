"""The report links of the UI: ``/files/`` serves the report folders of the data folder,
read-only, and nothing else (acs_khaos_dagster/report_files.py).

The requests are ASGI scopes as uvicorn builds them (the path already percent-decoded),
so a traversal arrives exactly as it would from a browser or curl.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import anyio
import pytest

from acs_khaos_dagster.report_files import ReportFiles, report_url, served_path
from acs_khaos_dagster.webserver import UiAction, UiGuard, serve

ROOT = Path(__file__).resolve().parent.parent


class Dagster:
    """Stands in for Dagster's app: answers 200 "dagster" to whatever reaches it."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        self.paths.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"dagster"})


def call(app, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:  # type: ignore[no-untyped-def]
    """One request through ``app``: (status, headers, body)."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "query_string": b"", "headers": []}
    anyio.run(app, scope, receive, send)
    headers = {k.decode(): v.decode() for k, v in sent[0].get("headers", [])}
    return sent[0]["status"], headers, b"".join(m.get("body", b"") for m in sent[1:])


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    pack = data / "month_end" / "2026-03"
    (pack / "preview").mkdir(parents=True)
    (pack / "month_end_2026-03.html").write_text("<h1>FINAL</h1>", encoding="utf-8")
    (pack / "month_end_2026-03.xlsx").write_bytes(b"PK\x03\x04 workbook")
    (pack / "order_to_cash.csv").write_text("shipment_id\nSO1-1\n", encoding="utf-8")
    (pack / ".summary.csv.tmp").write_text("half written", encoding="utf-8")
    (data / "audit" / "2026-03").mkdir(parents=True)
    (data / "audit" / "2026-03" / "audit_report.html").write_text("audit", encoding="utf-8")
    (data / "overview").mkdir()
    (data / "overview" / "brand_overview.html").write_text("overview", encoding="utf-8")
    (data / "products").mkdir()
    (data / "products" / "not_ready_for_sale.csv").write_text("sku\nX\n", encoding="utf-8")
    (data / "products" / "sku_master.parquet").write_bytes(b"costs")
    (data / "integration.sqlite").write_bytes(b"SQLite format 3 every order")
    (tmp_path / "secret.env").write_text("ACS_KHAOS_KHAOS__API_KEY=s3cret", encoding="utf-8")
    return data


@pytest.fixture
def app(data_dir: Path) -> ReportFiles:
    return ReportFiles(Dagster(), data_dir)


def test_a_pack_page_is_served_sandboxed_and_the_workbook_as_a_download(app: ReportFiles) -> None:
    status, headers, body = call(app, "/files/month_end/2026-03/month_end_2026-03.html")
    assert (status, body) == (200, b"<h1>FINAL</h1>")
    assert headers["content-type"] == "text/html; charset=utf-8"
    # The page is on the UI's origin: it may run no script there.
    assert headers["content-security-policy"].startswith("sandbox")
    assert headers["x-content-type-options"] == "nosniff"

    status, headers, body = call(app, "/files/month_end/2026-03/month_end_2026-03.xlsx")
    assert (status, body) == (200, b"PK\x03\x04 workbook")
    assert headers["content-disposition"].startswith("attachment;")


def test_the_audit_report_the_overview_and_the_not_ready_csv_are_served(app: ReportFiles) -> None:
    assert call(app, "/files/audit/2026-03/audit_report.html")[0] == 200
    assert call(app, "/files/overview/brand_overview.html")[2] == b"overview"
    assert call(app, "/files/products/not_ready_for_sale.csv")[2] == b"sku\nX\n"


def test_a_pack_folder_lists_its_reports_but_no_hidden_file(app: ReportFiles) -> None:
    status, _, body = call(app, "/files/month_end/2026-03/")
    page = body.decode()
    assert status == 200
    assert 'href="/files/month_end/2026-03/order_to_cash.csv"' in page
    assert "preview/" in page and ".tmp" not in page


@pytest.mark.parametrize(
    "path",
    [
        "/files/integration.sqlite",
        "/files/products/sku_master.parquet",
        "/files/products/",
        "/files/",
        "/files/../secret.env",
        "/files/month_end/../integration.sqlite",
        "/files/month_end/2026-03/../../integration.sqlite",
        "/files/month_end/2026-03/../../../secret.env",
        "/files/month_end/./2026-03/order_to_cash.csv",
        "/files/month_end//2026-03/order_to_cash.csv",
        "/files/month_end/2026-03/.summary.csv.tmp",
        "/files/month_end\\..\\integration.sqlite",
        "/files/month_end/2026-03/order_to_cash.csv\x00.html",
        "/files/audit/2026-03/missing.html",
    ],
)
def test_anything_outside_the_report_folders_is_not_found(
    app: ReportFiles, path: str, data_dir: Path
) -> None:
    status, _, body = call(app, path)
    assert status == 404, path
    assert b"SQLite" not in body and b"s3cret" not in body and b"costs" not in body


def test_a_symlink_out_of_a_report_folder_is_refused(app: ReportFiles, data_dir: Path) -> None:
    pack = data_dir / "month_end" / "2026-03"
    (pack / "store.csv").symlink_to(data_dir / "integration.sqlite")
    (pack / "secrets").symlink_to(data_dir.parent, target_is_directory=True)
    (data_dir / "audit" / "2026-04").symlink_to(data_dir, target_is_directory=True)
    # Even a link to a report beside it: no link is followed, whatever it points at.
    (pack / "copy.csv").symlink_to(pack / "order_to_cash.csv")

    for path in (
        "/files/month_end/2026-03/store.csv",
        "/files/month_end/2026-03/secrets/secret.env",
        "/files/audit/2026-04/integration.sqlite",
        "/files/audit/2026-04/",
        "/files/month_end/2026-03/copy.csv",
    ):
        assert call(app, path)[0] == 404, path
    listed = call(app, "/files/month_end/2026-03/")[2].decode()
    assert "store.csv" not in listed and "secrets" not in listed


def test_a_report_folder_that_is_itself_a_symlink_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "report.html").write_text("not ours", encoding="utf-8")
    (data / "month_end").symlink_to(elsewhere, target_is_directory=True)

    assert call(ReportFiles(Dagster(), data), "/files/month_end/report.html")[0] == 404


def test_files_are_read_only_and_everything_else_goes_to_dagster(app: ReportFiles) -> None:
    status, headers, _ = call(app, "/files/month_end/2026-03/order_to_cash.csv", "POST")
    assert status == 405 and headers["allow"] == "GET, HEAD"
    status, headers, body = call(app, "/files/month_end/2026-03/order_to_cash.csv", "HEAD")
    assert (status, body) == (200, b"") and headers["content-length"] == "18"
    assert call(app, "/assets/month_end_pack") == (200, {}, b"dagster")
    assert call(app, "/filesystem")[2] == b"dagster"


def test_a_report_gets_a_files_url_and_anything_else_none(data_dir: Path) -> None:
    pack = data_dir / "month_end" / "2026-03" / "month_end_2026-03.html"
    assert report_url(data_dir, pack) == "/files/month_end/2026-03/month_end_2026-03.html"
    assert report_url(data_dir, data_dir / "integration.sqlite") is None
    assert report_url(data_dir, data_dir.parent / "secret.env") is None
    assert served_path(data_dir, "month_end/2026-03/month_end_2026-03.html") == pack


def test_make_dev_serves_the_ui_through_the_wrapper_beside_the_daemon() -> None:
    recipe = subprocess.run(
        ["make", "-n", "dev"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert "acs-khaos webserver --local -w workspace.yaml -h 127.0.0.1" in recipe
    assert "dagster-daemon run -w workspace.yaml &" in recipe
    assert "dagster dev" not in recipe


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _as_from_a_terminal() -> None:
    """The child's signals as a terminal's shell would give them: every one at its default,
    none blocked. A test worker may ignore some (SIGINT under pytest-xdist) and an ignored
    signal is inherited across exec: a shell started with SIGINT ignored can never take it
    back, and a stand-in daemon ignoring SIGTERM would outlive the EXIT trap's kill."""
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    for number in signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP}:
        try:
            signal.signal(number, signal.SIG_DFL)
        except (OSError, ValueError):
            continue  # one the C library keeps for itself: nothing a shell inherits


def test_ctrl_c_on_make_dev_stops_the_daemon_too(tmp_path: Path) -> None:
    """A second daemon left behind would tick every sensor and schedule twice."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("dagster-daemon", "acs-khaos"):  # stand-ins: note the pid, then wait
        script = bin_dir / name
        script.write_text(f"#!/bin/sh\necho $$ > {tmp_path / name}.pid\nexec sleep 60\n")
        script.chmod(0o755)
    make = subprocess.Popen(
        ["make", "-s", "-o", "setup", "dev", f"BIN={bin_dir}"],
        cwd=ROOT,
        start_new_session=True,
        preexec_fn=_as_from_a_terminal,
    )
    pids = [tmp_path / "dagster-daemon.pid", tmp_path / "acs-khaos.pid"]
    deadline = time.monotonic() + 20
    while not all(p.exists() and p.read_text().strip() for p in pids):
        assert time.monotonic() < deadline and make.poll() is None, "make dev did not start"
        time.sleep(0.05)
    daemon, webserver = (int(p.read_text()) for p in pids)

    os.killpg(make.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole group
    try:
        make.wait(timeout=20)
    except subprocess.TimeoutExpired:
        state = Path(f"/proc/{make.pid}/status").read_text()
        os.killpg(make.pid, signal.SIGKILL)
        pytest.fail(f"make dev outlived Ctrl-C; make's signals: {state[state.find('SigPnd') :]}")

    deadline = time.monotonic() + 10
    while (_alive(daemon) or _alive(webserver)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(daemon), "the daemon outlived make dev"
    assert not _alive(webserver)


def test_a_local_webserver_refuses_any_address_but_loopback(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="loopback"):
        serve(tmp_path / "workspace.yaml", host="0.0.0.0", local=True)
    with pytest.raises(ValueError, match="loopback"):
        serve(tmp_path / "workspace.yaml", uds=tmp_path / "web.sock", local=True)


def test_without_a_proxy_a_ui_action_is_recorded_as_the_local_user() -> None:
    actions: list[UiAction] = []
    guard = UiGuard(Dagster(), actions.append, local_user="local:alice")

    async def receive() -> dict:
        return {"type": "http.request", "body": b'{"query": "mutation { setNuxSeen }"}'}

    async def send(message: dict) -> None:
        return None

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/graphql",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
    }
    anyio.run(guard, scope, receive, send)

    assert [(a.actor, a.fields) for a in actions] == [("local:alice", ("setNuxSeen",))]


# --- several brands: one webserver, each brand's reports from its own data folder ---------


@pytest.fixture
def brand_data(data_dir: Path) -> Path:
    """Brand acme as ``acs-khaos demo --brands N`` lays it out: its settings file in the
    demo's brands folder naming its data folder ``<data>/brands/acme``."""
    acme = data_dir / "brands" / "acme"
    (acme / "month_end" / "2026-03").mkdir(parents=True)
    (acme / "month_end" / "2026-03" / "month_end_2026-03.html").write_text("ACME", "utf-8")
    (acme / "integration.sqlite").write_bytes(b"SQLite format 3 acme's orders")
    settings = data_dir / "brands" / "settings"
    settings.mkdir()
    (settings / "acme.yaml").write_text(f"brand: acme\ndata_dir: {acme}\n", encoding="utf-8")
    return acme


def test_a_brands_report_link_carries_its_code_and_opens_its_own_file(
    app: ReportFiles, brand_data: Path
) -> None:
    page = brand_data / "month_end" / "2026-03" / "month_end_2026-03.html"
    url = report_url(brand_data, page, "acme")
    assert url == "/files/acme/month_end/2026-03/month_end_2026-03.html"
    assert call(app, url)[:3:2] == (200, b"ACME")


def test_a_brand_is_found_through_the_brands_folder_named_for_the_deployment(
    app: ReportFiles, brand_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    named = tmp_path / "etc_brands"
    named.mkdir()
    (named / "bravo.yaml").write_text(f"brand: bravo\ndata_dir: {brand_data}\n", "utf-8")
    monkeypatch.setenv("ACS_KHAOS_BRANDS_DIR", str(named))
    url = "/files/bravo/month_end/2026-03/month_end_2026-03.html"
    assert call(app, url)[0] == 200
    # The demo's folder is not read once a deployment's is named.
    assert call(app, "/files/acme/month_end/2026-03/month_end_2026-03.html")[0] == 404


def test_a_brands_folder_serves_only_its_report_folders(app: ReportFiles, brand_data: Path) -> None:
    assert call(app, "/files/acme/integration.sqlite")[0] == 404
    assert call(app, "/files/acme/")[0] == 404  # no listing of a brand's whole folder
    assert call(app, "/files/acme/../month_end/2026-03/order_to_cash.csv")[0] == 404


def test_only_a_configured_brand_is_served(app: ReportFiles, brand_data: Path) -> None:
    # A folder of the data folder that is no configured brand's never stands for one.
    (brand_data.parent.parent / "acs_drop" / "month_end").mkdir(parents=True)
    (brand_data.parent.parent / "acs_drop" / "month_end" / "x.csv").write_text("x", "utf-8")
    assert call(app, "/files/acs_drop/month_end/x.csv")[0] == 404
    assert call(app, "/files/bravo/month_end/2026-03/month_end_2026-03.html")[0] == 404


def test_a_brands_report_folder_that_is_a_link_is_refused(
    app: ReportFiles, brand_data: Path, data_dir: Path
) -> None:
    # The brand's data folder is the operator's setting; what is in it is checked as ours is.
    (brand_data / "audit").symlink_to(data_dir / "month_end")
    assert call(app, "/files/acme/audit/2026-03/order_to_cash.csv")[0] == 404


@pytest.mark.parametrize("code", ["audit", "month_end", "overview", "products"])
def test_a_brand_named_like_a_report_folder_is_refused_by_the_settings(
    code: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from acs_khaos_dagster.config import SettingsError, load_settings

    monkeypatch.setenv("ACS_KHAOS_BRAND", code)
    with pytest.raises(SettingsError, match="brand"):
        load_settings()


def test_every_served_top_folder_is_a_reserved_brand_code() -> None:
    from acs_khaos_dagster.config.settings import RESERVED_BRAND_CODES
    from acs_khaos_dagster.report_files import SERVED_DIRS, SERVED_FILES

    served = {*SERVED_DIRS, *(file.split("/")[0] for file in SERVED_FILES)}
    assert served <= RESERVED_BRAND_CODES
