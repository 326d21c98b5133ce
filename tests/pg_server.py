"""A throwaway real PostgreSQL server for tests.

Usage::

    with PostgresServer() as pg:
        url = pg.create_database()  # fresh empty database, asyncpg URL

The server lives in a temporary directory, listens only on 127.0.0.1 on a
free port, trusts every local connection as the ``inloop`` role and is tuned
for speed, not durability (fsync off).  ``stop()`` kills it and removes every
file it wrote.

PostgreSQL refuses to run as root, so when the tests run as root (CI) the
server is initialised and started as the ``postgres`` system user through
``runuser``.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import itertools
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

__all__ = ["PostgresServer", "find_bindir"]

USER = "inloop"
_INSTALL_HINT = (
    "PostgreSQL is not installed (no initdb/pg_ctl found via `pg_config --bindir`, "
    "/usr/lib/postgresql/*/bin or PATH). Run `bash tests/run.sh`, which installs it "
    "(apt-get install postgresql), or install the PostgreSQL server package yourself."
)
_DB_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}


def _has_server(bindir: Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in ("initdb", "pg_ctl"))


def _version_key(path: str) -> tuple[int, ...]:
    version = Path(path).parent.name  # /usr/lib/postgresql/<version>/bin
    return tuple(int(part) for part in re.findall(r"\d+", version))


def find_bindir() -> Path:
    """Directory holding initdb and pg_ctl, or RuntimeError if there is none."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=30, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        # Debian's libpq-dev ships a pg_config that names a bindir without a server.
        if out and _has_server(Path(out)):
            return Path(out)
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True):
        if _has_server(Path(candidate)):
            return Path(candidate)
    initdb = shutil.which("initdb")
    if initdb:
        bindir = Path(initdb).resolve().parent
        if _has_server(bindir):
            return bindir
        if shutil.which("pg_ctl"):
            return Path(initdb).parent
    raise RuntimeError(_INSTALL_HINT)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no server log: {exc})"
    return "\n".join(text.splitlines()[-lines:]) or "(server log is empty)"


class PostgresServer:
    """A private PostgreSQL server in a temporary directory.

    ``start()`` (or entering the context manager) runs initdb and pg_ctl;
    ``stop()`` (or leaving it) kills the server and deletes its files.
    """

    def __init__(self, *, bindir: Path | None = None, start_timeout: int = 60) -> None:
        self.bindir = bindir if bindir is not None else find_bindir()
        self.start_timeout = start_timeout
        self.port = 0
        self.startup_seconds = 0.0
        self._tmpdir: Path | None = None
        self._running = False
        self._as_postgres = os.geteuid() == 0
        self._names = itertools.count(1)

    # -- paths -----------------------------------------------------------------

    @property
    def tmpdir(self) -> Path:
        if self._tmpdir is None:
            raise RuntimeError("PostgresServer is not started")
        return self._tmpdir

    @property
    def datadir(self) -> Path:
        return self.tmpdir / "data"

    @property
    def logfile(self) -> Path:
        return self.tmpdir / "server.log"

    # -- helpers -----------------------------------------------------------------

    def _bin(self, name: str) -> str:
        return str(self.bindir / name)

    def _run(self, argv: list[str], *, server_user: bool, timeout: float) -> str:
        """Run a PostgreSQL binary, as ``postgres`` when needed; return its output."""
        if server_user and self._as_postgres:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        # cwd: the server user may not be able to enter the caller's cwd (/root).
        try:
            proc = subprocess.run(
                argv,
                cwd=self.tmpdir,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeError(f"{' '.join(argv)} failed: {exc}") from exc
        output = (proc.stdout + proc.stderr).strip()
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited with {proc.returncode}:\n{output}")
        return output

    def _fail(self, message: str, cause: BaseException) -> RuntimeError:
        log = _tail(self.logfile)
        self.stop()
        return RuntimeError(
            f"could not start the test PostgreSQL server ({message}): {cause}\n"
            f"--- last lines of the server log ---\n{log}"
        )

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> PostgresServer:
        if self._running:
            return self
        began = time.monotonic()
        # Under /tmp with 0o755 so the postgres user can reach it when we are root.
        self._tmpdir = Path(
            tempfile.mkdtemp(prefix="inloop-pg-", dir="/tmp" if self._as_postgres else None)
        )
        self._running = True  # from here on stop() has something to clean up
        atexit.register(self.stop)
        try:
            self.tmpdir.chmod(0o755)
            if self._as_postgres:
                shutil.chown(self.tmpdir, user="postgres", group="postgres")
        except (OSError, LookupError) as exc:
            raise self._fail("preparing the temp dir for the postgres user", exc) from exc

        try:
            self._run(
                [
                    self._bin("initdb"),
                    f"--pgdata={self.datadir}",
                    f"--username={USER}",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                    "--no-instructions",
                ],
                server_user=True,
                timeout=120,
            )
        except RuntimeError as exc:
            raise self._fail("initdb failed", exc) from exc

        settings = dict(_SETTINGS, unix_socket_directories=f"'{self.tmpdir}'")
        conf = "".join(f"{key} = {value}\n" for key, value in settings.items())
        with (self.datadir / "postgresql.conf").open("a") as fh:
            fh.write("\n# inloop test server\n" + conf)

        # A free port may be taken between probing and binding: retry a few times.
        for attempt in range(3):
            self.port = _free_port()
            try:
                self._run(
                    [
                        self._bin("pg_ctl"),
                        f"--pgdata={self.datadir}",
                        f"--log={self.logfile}",
                        f"--options=-p {self.port}",
                        "--wait",
                        f"--timeout={self.start_timeout}",
                        "start",
                    ],
                    server_user=True,
                    timeout=self.start_timeout + 30,
                )
                break
            except RuntimeError as exc:
                if attempt < 2 and "could not bind" in _tail(self.logfile, 10):
                    continue
                raise self._fail("pg_ctl start failed", exc) from exc
        self.startup_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        """Kill the server (immediate mode) and delete its directory. Idempotent."""
        if not self._running:
            return
        self._running = False
        atexit.unregister(self.stop)
        tmpdir = self._tmpdir
        if tmpdir is None:
            return
        if (tmpdir / "data" / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError):  # best effort: still remove the files
                self._run(
                    [
                        self._bin("pg_ctl"),
                        f"--pgdata={tmpdir / 'data'}",
                        "--mode=immediate",
                        "--wait",
                        "stop",
                    ],
                    server_user=True,
                    timeout=60,
                )
        shutil.rmtree(tmpdir, ignore_errors=True)
        self._tmpdir = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- databases ---------------------------------------------------------------

    def url(self, dbname: str = "postgres") -> str:
        """SQLAlchemy asyncpg URL for ``dbname`` on this server."""
        if not self._running:
            raise RuntimeError("PostgresServer is not started")
        return f"postgresql+asyncpg://{USER}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (a unique name if none given); return its URL."""
        if not self._running:
            raise RuntimeError("PostgresServer is not started")
        if name is None:
            name = f"test_{os.getpid()}_{next(self._names)}"
        if not _DB_NAME.fullmatch(name):
            raise ValueError(f"invalid database name {name!r}: use letters, digits and _")
        self._run(
            [
                self._bin("createdb"),
                "--host=127.0.0.1",
                f"--port={self.port}",
                f"--username={USER}",
                "--no-password",
                name,
            ],
            server_user=False,
            timeout=60,
        )
        return self.url(name)
