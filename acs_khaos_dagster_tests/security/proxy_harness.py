"""Debian's real nginx, configured from ``deploy/nginx.conf``, in front of the real webserver.

The production shape, as the systemd units start it: the code server on its Unix
socket (``dagster code-server start --socket``), the webserver (``acs-khaos webserver
--uds``: Dagster's own app behind the UI guard) loading it through ``deploy/workspace.yaml``,
nginx with ``deploy/nginx.conf`` in front, all on a temporary ``DAGSTER_HOME``. The
shipped files are used as they are; only what names this machine changes: socket paths,
listen addresses (free loopback ports), the certificate (self-signed, made here) and the
htpasswd file. Locally a missing nginx skips; in CI (``CI`` set) it fails: ``make test``
installs it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
USER, PASSWORD = "alice", "correct horse battery staple"
SOCKET_LINE = "server unix:/run/acs-khaos-web/webserver.sock;"
CODE_SERVER_SOCKET = "/run/acs-khaos/code-server.sock"
STARTUP_S = 120


def nginx_binary() -> str:
    for candidate in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    reason = "nginx is not installed (Debian: apt-get install -y nginx)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must install it (make test does)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "dagster.pem", folder / "dagster.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def render_site(
    folder: Path, *, https_port: int, http_port: int, web_socket: Path, cert: Path, key: Path
) -> str:
    """``deploy/nginx.conf`` with this machine's addresses, certificate and files."""
    text = (ROOT / "deploy" / "nginx.conf").read_text()
    htpasswd = folder / "htpasswd"
    # bcrypt as `htpasswd -B` makes; the lowest cost keeps the test quick.
    digest = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    htpasswd.write_text(f"{USER}:{digest}\n")
    replacements = {
        SOCKET_LINE: f"server unix:{web_socket};",
        "    listen 80;\n": f"    listen 127.0.0.1:{http_port};\n",
        "    listen [::]:80;\n": "",
        "    listen 443 ssl http2;\n": f"    listen 127.0.0.1:{https_port} ssl http2;\n",
        "    listen [::]:443 ssl http2;\n": "",
        "/etc/ssl/certs/dagster.pem": str(cert),
        "/etc/ssl/private/dagster.key": str(key),
        "/etc/nginx/acs-khaos.htpasswd": str(htpasswd),
    }
    for old, new in replacements.items():
        assert old in text, f"deploy/nginx.conf no longer has {old!r}: update the harness"
        text = text.replace(old, new)
    return text


def main_config(folder: Path, site: Path) -> Path:
    temp = folder / "temp"
    temp.mkdir()
    # As root, workers would run as "nobody" and could not reach the temporary files.
    user = "user root;\n" if os.geteuid() == 0 else ""
    config = folder / "nginx.conf"
    config.write_text(
        f"{user}worker_processes 1;\npid {folder / 'nginx.pid'};\n"
        f"error_log {folder / 'error.log'} info;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        f"  access_log {folder / 'access.log'};\n"
        f"  client_body_temp_path {temp / 'body'};\n  proxy_temp_path {temp / 'proxy'};\n"
        f"  fastcgi_temp_path {temp / 'fastcgi'};\n  uwsgi_temp_path {temp / 'uwsgi'};\n"
        f"  scgi_temp_path {temp / 'scgi'};\n"
        "  default_type text/plain;\n"
        f"  include {site};\n"
        "}\n"
    )
    return config


@dataclass
class Proxy:
    https_port: int
    http_port: int
    data_dir: Path
    folder: Path

    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def url(self, path: str) -> str:
        return f"{self.origin}{path}"

    def client(self, *, local_address: str | None = None, auth: bool = True) -> httpx.Client:
        transport = httpx.HTTPTransport(verify=False, local_address=local_address)
        return httpx.Client(
            transport=transport,
            auth=(USER, PASSWORD) if auth else None,
            timeout=30,
            follow_redirects=False,
        )

    def ui_actions(self) -> list[tuple[str, str]]:
        """(actor, action) of every UI action the webserver recorded in the audit log."""
        import sqlite3

        database = self.data_dir / "integration.sqlite"
        if not database.exists():
            return []
        with sqlite3.connect(database) as conn:
            return [
                (actor, action)
                for actor, action in conn.execute(
                    "SELECT actor, action FROM audit_log WHERE action LIKE 'dagster_ui:%'"
                )
            ]


@contextmanager
def _process(args: list[str], log: Path, env: dict[str, str], cwd: Path) -> Iterator[None]:
    with log.open("wb") as output:
        process = subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    try:
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _wait_for_code_server(dagster: Path, code_socket: Path, log: Path, env: dict[str, str]) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        check = subprocess.run(
            [str(dagster), "api", "grpc-health-check", "--socket", str(code_socket)],
            capture_output=True,
            env=env,
        )
        if check.returncode == 0:
            return
        time.sleep(0.5)
    raise AssertionError(f"the code server did not start: {log.read_text()[-3000:]}")


def _wait_for_socket(web_socket: Path, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_S
    transport = httpx.HTTPTransport(uds=str(web_socket))
    with httpx.Client(transport=transport, timeout=5) as client:
        while time.monotonic() < deadline:
            if web_socket.exists():
                try:
                    if client.get("http://webserver/server_info").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
            time.sleep(0.5)
    raise AssertionError(f"the webserver did not start: {log.read_text()[-3000:]}")


@contextmanager
def running_proxy(folder: Path) -> Iterator[Proxy]:
    nginx = nginx_binary()
    home, data = folder / "dagster_home", folder / "data"
    home.mkdir()
    data.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    web_socket = folder / "webserver.sock"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("ACS_KHAOS_") or key == "ACS_KHAOS_REQUIRE_POSTGRES"
    }
    env.update({"DAGSTER_HOME": str(home), "ACS_KHAOS_DATA_DIR": str(data)})
    code_socket = folder / "code-server.sock"
    workspace = folder / "workspace.yaml"
    shipped = (ROOT / "deploy" / "workspace.yaml").read_text()
    assert CODE_SERVER_SOCKET in shipped, "deploy/workspace.yaml changed: update the harness"
    workspace.write_text(shipped.replace(CODE_SERVER_SOCKET, str(code_socket)))
    dagster = Path(sys.executable).with_name("dagster")
    code_args = [str(dagster), "code-server", "start", "--socket", str(code_socket)]
    code_args += ["-m", "acs_khaos_dagster.definitions"]
    webserver = Path(sys.executable).with_name("acs-khaos")
    web_args = [str(webserver), "webserver", "-w", str(workspace), "--uds"]
    cert, key = self_signed(folder)
    https_port, http_port = free_port(), free_port()
    site = folder / "site.conf"
    site.write_text(
        render_site(
            folder,
            https_port=https_port,
            http_port=http_port,
            web_socket=web_socket,
            cert=cert,
            key=key,
        )
    )
    config = main_config(folder, site)
    check = subprocess.run(
        [nginx, "-t", "-c", str(config), "-p", str(folder)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    with _process(code_args, folder / "code-server.log", env, ROOT):
        _wait_for_code_server(dagster, code_socket, folder / "code-server.log", env)
        with _process([*web_args, str(web_socket)], folder / "webserver.log", env, ROOT):
            _wait_for_socket(web_socket, folder / "webserver.log")
            nginx_args = [nginx, "-c", str(config), "-p", str(folder), "-g", "daemon off;"]
            with _process(nginx_args, folder / "nginx.out", dict(os.environ), folder):
                proxy = Proxy(https_port, http_port, data, folder)
                _wait_for_nginx(proxy)
                yield proxy


def _wait_for_nginx(proxy: Proxy) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", proxy.https_port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError((proxy.folder / "error.log").read_text()[-3000:])
