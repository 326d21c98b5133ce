"""A throwaway real Synapse homeserver for tests.

Usage::

    with SynapseServer() as hs:
        token = hs.register("ann", admin=False)   # → (user_id, password)

It runs from the `matrix-synapse` package of the test extra, in a temporary
directory: SQLite database, client API only on 127.0.0.1 (no federation
listener, no TLS), rate limits raised so that tests are not throttled, and a
`registration_shared_secret` so that users are registered with the admin API.
`restart()` stops and starts it on the same port and data (a homeserver that goes
away mid-scenario). If it cannot start, the error carries Synapse's own log lines.

Rate limits for bursts: the whole server as a homeserver is by default
(`SynapseServer(rc_message=DEFAULT_MESSAGE_LIMIT)`: everyone may send one message
every five seconds after ten), or one user at a whole number of messages a second
(`limit_messages`: Synapse's admin API `override_ratelimit`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

SERVER_NAME = "inloop.test"
_SECRET = "test-registration-shared-secret"
_FAST = {"per_second": 10000, "burst_count": 10000}
#: Synapse's own default `rc_message`: what a homeserver does unless told otherwise
DEFAULT_MESSAGE_LIMIT = {"per_second": 0.2, "burst_count": 10}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _config(base: Path, port: int, rc_message: Mapping[str, float]) -> dict[str, object]:
    return {
        "server_name": SERVER_NAME,
        "pid_file": str(base / "homeserver.pid"),
        "listeners": [
            {
                "port": port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                "resources": [{"names": ["client"], "compress": False}],
            }
        ],
        "database": {"name": "sqlite3", "args": {"database": str(base / "homeserver.db")}},
        "log_config": str(base / "log.yaml"),
        "media_store_path": str(base / "media"),
        "signing_key_path": str(base / "signing.key"),
        "registration_shared_secret": _SECRET,
        "report_stats": False,
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "enable_registration": False,
        "bcrypt_rounds": 4,  # logins and registrations in milliseconds, not a quarter second
        "presence": {"enabled": False},
        "url_preview_enabled": False,
        "rc_message": dict(rc_message),
        "rc_registration": _FAST,
        "rc_room_creation": _FAST,
        "rc_login": {"address": _FAST, "account": _FAST, "failed_attempts": _FAST},
        "rc_joins": {"local": _FAST, "remote": _FAST},
        "rc_joins_per_room": _FAST,
        "rc_invites": {"per_room": _FAST, "per_user": _FAST, "per_issuer": _FAST},
        "rc_admin_redaction": _FAST,
        "rc_key_requests": _FAST,
        "rc_3pid_validation": _FAST,
        "rc_delayed_event_mgmt": _FAST,
        "rc_presence": {"per_user": _FAST},
    }


_LOG_CONFIG = """\
version: 1
formatters:
  precise:
    format: '%(asctime)s - %(name)s - %(levelname)s - %(message)s'
handlers:
  file:
    class: logging.FileHandler
    formatter: precise
    filename: {path}
root:
  level: WARNING
  handlers: [file]
disable_existing_loggers: false
"""


class SynapseServer:
    def __init__(
        self, *, start_timeout: float = 60.0, rc_message: Mapping[str, float] = _FAST
    ) -> None:
        self.start_timeout = start_timeout
        #: how fast each user may send messages (`DEFAULT_MESSAGE_LIMIT`: Synapse's own)
        self.rc_message = rc_message
        self._admin_token: str | None = None
        self.port = _free_port()
        self.base = Path(tempfile.mkdtemp(prefix="inloop-synapse-"))
        self._process: subprocess.Popen[bytes] | None = None
        self.startup_seconds = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def log_path(self) -> Path:
        return self.base / "homeserver.log"

    def user_id(self, name: str) -> str:
        return f"@{name}:{SERVER_NAME}"

    def __enter__(self) -> SynapseServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop(remove=True)

    def _write_config(self) -> Path:
        path = self.base / "homeserver.yaml"
        if not path.exists():
            (self.base / "media").mkdir(exist_ok=True)
            (self.base / "log.yaml").write_text(_LOG_CONFIG.format(path=self.log_path))
            # JSON is YAML: no YAML writer needed.
            config = _config(self.base, self.port, self.rc_message)
            path.write_text(json.dumps(config, indent=2))
            self._synapse("--generate-keys")
        return path

    def _synapse(self, *args: str) -> None:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "synapse.app.homeserver",
                "-c",
                str(self.base / "homeserver.yaml"),
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"synapse {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")

    def start(self) -> None:
        config = self._write_config()
        began = time.monotonic()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "synapse.app.homeserver", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.base / "stderr.log", "ab"),  # noqa: SIM115 - the child owns it
            cwd=self.base,
            start_new_session=True,
        )
        deadline = began + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.url}/_matrix/client/versions", timeout=2):
                    self.startup_seconds = time.monotonic() - began
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Synapse did not start on {self.url}:\n{self._logs()}")

    def _logs(self) -> str:
        parts = []
        for path in (self.log_path, self.base / "stderr.log"):
            try:
                lines = path.read_text(errors="replace").splitlines()[-40:]
            except OSError:
                continue
            parts.append("\n".join(lines))
        return "\n".join(parts) or "(Synapse wrote no log)"

    def stop(self, *, remove: bool = False) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if remove:
            shutil.rmtree(self.base, ignore_errors=True)

    def restart(self) -> None:
        self.stop()
        self.start()

    def register(self, name: str, *, admin: bool = False) -> tuple[str, str]:
        """A new user through the shared-secret admin API; returns (user id, password)."""
        endpoint = f"{self.url}/_synapse/admin/v1/register"
        with urllib.request.urlopen(endpoint, timeout=10) as answer:
            nonce = json.load(answer)["nonce"]
        password = f"pw-{name}-secret"
        mac = hmac.new(_SECRET.encode(), digestmod=hashlib.sha1)
        mac.update(
            b"\x00".join(
                [
                    nonce.encode(),
                    name.encode(),
                    password.encode(),
                    b"admin" if admin else b"notadmin",
                ]
            )
        )
        body = {
            "nonce": nonce,
            "username": name,
            "password": password,
            "admin": admin,
            "mac": mac.hexdigest(),
        }
        request = urllib.request.Request(
            endpoint,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            user_id: str = json.load(answer)["user_id"]
        return user_id, password

    def limit_messages(self, user_id: str, per_second: int, burst_count: int) -> None:
        """Let `user_id` send `per_second` messages after `burst_count`, whatever the
        server's `rc_message`: the admin API `override_ratelimit`, as an admin would (0
        and 0 lift the limit). It takes whole numbers only: Synapse's default (0.2) is
        the server's `rc_message` (`DEFAULT_MESSAGE_LIMIT`)."""
        body = {"messages_per_second": per_second, "burst_count": burst_count}
        url = f"{self.url}/_synapse/admin/v1/users/{user_id}/override_ratelimit"
        request = urllib.request.Request(
            url,
            data=json.dumps(body).encode(),
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {self._admin()}",
            },
        )
        with urllib.request.urlopen(request, timeout=10):
            pass

    def unlimit_messages(self, user_id: str) -> None:
        """Remove `user_id`'s override: the server's `rc_message` applies again."""
        url = f"{self.url}/_synapse/admin/v1/users/{user_id}/override_ratelimit"
        headers = {"Authorization": f"Bearer {self._admin()}"}
        request = urllib.request.Request(url, headers=headers, method="DELETE")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def _admin(self) -> str:
        """An admin's access token (an admin registered and logged in once)."""
        if self._admin_token is None:
            user_id, password = self.register(f"ratelimiter{os.getpid()}", admin=True)
            login = {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": user_id},
                "password": password,
            }
            request = urllib.request.Request(
                f"{self.url}/_matrix/client/v3/login",
                data=json.dumps(login).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=10) as answer:
                self._admin_token = str(json.load(answer)["access_token"])
        return self._admin_token
