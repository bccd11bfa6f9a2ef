"""The proxy refuses forged requests to the Dagster API; the UI keeps working (issue 20, 1).

Debian's nginx with ``deploy/nginx.conf`` in front of the real Dagster webserver (the
project's code location, served by ``acs-khaos webserver``). A browser resends basic-auth
credentials cross-site, so every forged request below carries valid credentials, as a
page an operator opens would make it: a top-level GET, a form POST, a ``text/plain``
POST, a foreign Origin. Each is refused by the proxy itself (its own answer, not the
webserver's), and none reaches Dagster (no UI action is recorded). The UI's own traffic
gets through: pages and static files, a JSON POST from its origin, the websocket.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from acs_khaos_dagster_tests.security.proxy_harness import (
    PASSWORD,
    USER,
    Proxy,
    running_proxy,
)

MUTATION = "mutation { setNuxSeen }"
FOREIGN = "https://evil.example"
REFUSED_BY_PROXY = "refused by the proxy"


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    with running_proxy(tmp_path_factory.mktemp("proxy")) as running:
        yield running


@pytest.fixture
def browser(proxy: Proxy) -> Iterator[httpx.Client]:
    """A signed-in browser: its basic-auth credentials go with every request."""
    with proxy.client() as client:
        yield client


def _basic() -> str:
    return "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


# --- the UI keeps working ----------------------------------------------------------------


def test_the_ui_page_and_its_static_files_load_through_the_proxy(
    proxy: Proxy, browser: httpx.Client
) -> None:
    page = browser.get(proxy.url("/"))
    assert page.status_code == 200
    assert "<html" in page.text.lower()
    asset = re.search(r'(?:src|href)="(/[^"]+\.(?:js|css))"', page.text)
    assert asset is not None, page.text[:500]
    assert browser.get(proxy.url(asset.group(1))).status_code == 200


def test_the_code_location_is_served_from_the_code_servers_socket(
    proxy: Proxy, browser: httpx.Client
) -> None:
    query = (
        "{ workspaceOrError { ... on Workspace { locationEntries { name "
        "locationOrLoadError { __typename ... on RepositoryLocation "
        "{ repositories { jobs { name } } } } } } } }"
    )
    answer = browser.post(
        proxy.url("/graphql"), json={"query": query}, headers={"Origin": proxy.origin}
    )
    (entry,) = answer.json()["data"]["workspaceOrError"]["locationEntries"]
    assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation", entry
    jobs = {job["name"] for job in entry["locationOrLoadError"]["repositories"][0]["jobs"]}
    assert {"integration_cycle", "personal_data_retention"} <= jobs


def test_a_json_query_from_the_uis_origin_is_answered(proxy: Proxy, browser: httpx.Client) -> None:
    answer = browser.post(
        proxy.url("/graphql"), json={"query": "{ version }"}, headers={"Origin": proxy.origin}
    )
    assert answer.status_code == 200
    assert answer.json()["data"]["version"]


def test_the_websocket_from_the_uis_origin_connects(proxy: Proxy) -> None:
    from websockets.sync.client import connect

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with connect(
        f"wss://127.0.0.1:{proxy.https_port}/graphql",
        ssl=context,
        origin=proxy.origin,
        subprotocols=["graphql-ws"],
        additional_headers={"Authorization": _basic()},
        proxy=None,
    ) as socket:
        socket.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(socket.recv(timeout=20))["type"] == "connection_ack"


def test_a_ui_action_is_recorded_with_the_user_the_proxy_signed_in(
    proxy: Proxy, browser: httpx.Client
) -> None:
    before = len(proxy.ui_actions())
    answer = browser.post(
        proxy.url("/graphql"),
        json={"query": MUTATION},
        # A client cannot choose who it is: the proxy overwrites these headers.
        headers={"Origin": proxy.origin, "X-Forwarded-User": "mallory", "Remote-User": "mallory"},
    )

    assert answer.status_code == 200, answer.text
    assert answer.json()["data"]["setNuxSeen"] is True
    assert proxy.ui_actions()[before:] == [(USER, "dagster_ui:setNuxSeen")]


# --- forged requests -----------------------------------------------------------------------


FORGED = [
    pytest.param(
        "GET",
        "/graphql?query=" + MUTATION,
        {},
        None,
        405,
        id="get-mutation-as-top-level-navigation",
    ),
    pytest.param(
        "GET",
        "/graphql?query=" + MUTATION,
        {"Origin": FOREIGN},
        None,
        403,
        id="get-from-another-page",
    ),
    pytest.param(
        "POST",
        "/graphql",
        {"Content-Type": "application/x-www-form-urlencoded", "Origin": FOREIGN},
        "query=" + MUTATION,
        403,
        id="form-post-from-another-page",
    ),
    pytest.param(
        "POST",
        "/graphql?query=" + MUTATION,
        {"Content-Type": "application/x-www-form-urlencoded"},
        "query=" + MUTATION,
        415,
        id="form-post-without-origin",
    ),
    pytest.param(
        "POST",
        "/graphql",
        {"Content-Type": "text/plain", "Origin": FOREIGN},
        json.dumps({"query": MUTATION}),
        403,
        id="text-plain-post-from-another-page",
    ),
    pytest.param(
        "POST",
        "/graphql?query=" + MUTATION,
        {"Content-Type": "text/plain"},
        json.dumps({"query": MUTATION}),
        415,
        id="text-plain-post-without-origin",
    ),
    pytest.param(
        "POST",
        "/graphql",
        {"Content-Type": "text/plain; x=application/json"},
        json.dumps({"query": MUTATION}),
        415,
        id="text-plain-dressed-as-json",
    ),
    pytest.param(
        "POST",
        "/graphql",
        {"Content-Type": "application/json", "Origin": FOREIGN},
        json.dumps({"query": MUTATION}),
        403,
        id="json-post-from-another-page",
    ),
    pytest.param(
        "POST",
        "/graphql",
        {"Content-Type": "application/json"},
        json.dumps({"query": MUTATION}),
        403,
        id="json-post-naming-no-origin",
    ),
    pytest.param(
        "POST",
        "/graphql",
        {"Content-Type": "application/json", "Origin": "null"},
        json.dumps({"query": MUTATION}),
        403,
        id="json-post-from-a-sandboxed-frame",
    ),
    pytest.param("GET", "/", {"Origin": FOREIGN}, None, 403, id="page-from-another-origin"),
    pytest.param(
        "PUT",
        "/graphql",
        {"Content-Type": "application/json", "Origin": FOREIGN},
        json.dumps({"query": MUTATION}),
        403,
        id="put-from-another-page",
    ),
]


@pytest.mark.parametrize(("method", "path", "headers", "body", "status"), FORGED)
def test_a_forged_request_is_refused_by_the_proxy_and_never_reaches_dagster(
    proxy: Proxy,
    browser: httpx.Client,
    method: str,
    path: str,
    headers: dict[str, str],
    body: str | None,
    status: int,
) -> None:
    before = proxy.ui_actions()

    answer = browser.request(method, proxy.url(path), headers=headers, content=body)

    assert answer.status_code == status, answer.text
    assert REFUSED_BY_PROXY in answer.text
    assert proxy.ui_actions() == before


def test_a_websocket_from_another_origin_is_refused(proxy: Proxy) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    for origin in (FOREIGN, None):
        with pytest.raises(InvalidStatus) as refused:
            connect(
                f"wss://127.0.0.1:{proxy.https_port}/graphql",
                ssl=context,
                origin=origin,
                subprotocols=["graphql-ws"],
                additional_headers={"Authorization": _basic()},
                proxy=None,
                # On a loaded 2-core CI machine the TLS handshake alone took over the
                # default 10 s once; the refusal is what is checked, not its speed.
                open_timeout=60,
            )
        assert refused.value.response.status_code == 403
        assert REFUSED_BY_PROXY.encode() in refused.value.response.body


# --- sign-in, headers, TLS --------------------------------------------------------------------


def test_the_ui_needs_a_signed_in_user(proxy: Proxy) -> None:
    with proxy.client(auth=False) as anonymous:
        assert anonymous.get(proxy.url("/")).status_code == 401
        wrong = anonymous.get(proxy.url("/"), auth=(USER, "wrong password"))
        assert wrong.status_code == 401


def test_password_guessing_is_rate_limited(proxy: Proxy) -> None:
    # From an address of its own, so the other tests keep their allowance.
    with proxy.client(auth=False, local_address="127.0.0.3") as guesser:
        codes = [
            guesser.get(proxy.url("/"), auth=(USER, f"guess {n}")).status_code for n in range(160)
        ]
    assert set(codes) == {401, 429}
    assert codes.count(429) >= 30


def test_every_answer_forbids_framing_and_insists_on_https(
    proxy: Proxy, browser: httpx.Client
) -> None:
    for answer in (
        browser.get(proxy.url("/")),
        browser.get(proxy.url("/graphql?query={version}")),
        httpx.get(proxy.url("/"), verify=False),
    ):
        # Dagster sends a policy of its own for the page; browsers enforce both.
        assert "frame-ancestors 'none'" in answer.headers.get_list("content-security-policy")
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["strict-transport-security"].startswith("max-age=31536000")
        assert answer.headers["server"] == "nginx"  # no version


def test_plain_http_is_sent_to_https(proxy: Proxy) -> None:
    answer = httpx.get(f"http://127.0.0.1:{proxy.http_port}/graphql", follow_redirects=False)
    assert answer.status_code == 301
    assert answer.headers["location"].startswith("https://")


def test_versions_are_shown_to_the_health_check_and_signed_in_users_only(proxy: Proxy) -> None:
    with proxy.client(auth=False) as health_check:  # 127.0.0.1: the allowed address
        assert "dagster_version" in health_check.get(proxy.url("/server_info")).json()
    with proxy.client(auth=False, local_address="127.0.0.2") as outsider:
        answer = outsider.get(proxy.url("/server_info"))
        assert answer.status_code == 401
        assert "1.13" not in answer.text
    with proxy.client(local_address="127.0.0.2") as signed_in:
        assert signed_in.get(proxy.url("/server_info")).status_code == 200


def _handshake(proxy: Proxy, version: ssl.TLSVersion) -> str | None:
    """The negotiated protocol, or None when the proxy refused the handshake."""
    import socket

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = context.maximum_version = version
    context.set_ciphers("ALL:@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", proxy.https_port), timeout=10) as raw:
        try:
            with context.wrap_socket(raw) as tls:
                return tls.version()
        except ssl.SSLError:
            return None


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
def test_only_tls_1_2_and_1_3_are_spoken(proxy: Proxy) -> None:
    assert _handshake(proxy, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"
    assert _handshake(proxy, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    assert _handshake(proxy, ssl.TLSVersion.TLSv1_1) is None
    assert _handshake(proxy, ssl.TLSVersion.TLSv1) is None


def test_the_shipped_config_sets_modern_tls_and_passes_the_user_on() -> None:
    """What the live test cannot show on this machine's OpenSSL: the config's own words."""
    text = (Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf").read_text()
    assert re.search(r"^\s*ssl_protocols TLSv1\.2 TLSv1\.3;", text, re.M)
    ciphers = re.search(r"^\s*ssl_ciphers (\S+);", text, re.M)
    assert ciphers is not None
    assert all(("GCM" in c or "CHACHA20" in c) and "DHE" in c for c in ciphers.group(1).split(":"))
    assert "proxy_set_header X-Forwarded-User  $remote_user;" in text
    assert 'proxy_set_header Authorization     "";' in text
