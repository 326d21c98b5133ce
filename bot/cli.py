"""`inloop` command line: run, db upgrade, check-config, status, digest, customer, version."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import DBAPIError

from bot import __version__
from bot.config import (
    ConfigError,
    Settings,
    describe_database,
    load_settings,
    read_environment,
    redact,
)
from bot.log_format import formatter
from bot.masking import Masker
from bot.platform import StartError
from storage.database import NoAnswer
from storage.migrate import SchemaTooNew

EXIT_CONFIG = 2
EXIT_UNAVAILABLE = 1
#: Ctrl-C outside `inloop run` (128 + SIGINT, as shells say it)
EXIT_INTERRUPTED = 130
log = logging.getLogger("inloop")
#: where the intake webhook takes mentions (bot/intake/webhook.py)
#: what a port that cannot be listened on raises (taken, not this machine's, privileged)
_BIND_ERRORS = frozenset({errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES})


@dataclass(frozen=True)
class Listener:
    """A port `inloop run` listens on, and the settings that choose it."""

    host: str
    port: int
    #: the setting to change when the host is wrong ("" when the host is not a setting)
    host_variable: str
    port_variable: str

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_CONFIG
    try:
        # A file named on purpose must exist, whatever the command (`version` too).
        env = read_environment(Path(args.env_file or ".env"), required=args.env_file is not None)
    except ConfigError as exc:
        print(f"inloop: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    # From here on, no secret reaches the terminal, valid or not: every log record,
    # every traceback and every line below is masked.
    mask = Masker.of(env.secrets())
    mask.install()

    def fail(line: str, code: int) -> int:
        print(mask(f"inloop: {line}"), file=sys.stderr)
        return code

    if args.command == "version":
        print(f"inloop {__version__}")
        return 0
    # Text until the settings are read (they may ask for JSON: INLOOP_LOG_FORMAT).
    log_handler = logging.StreamHandler(sys.stderr)
    log_handler.setFormatter(formatter("text"))
    logging.basicConfig(level=logging.WARNING, handlers=[log_handler])
    for warning in env.unknown_settings():
        print(mask(f"inloop: warning: {warning}"), file=sys.stderr)
    try:
        settings = load_settings(env.values)
    except ConfigError as exc:
        return fail(f"configuration error: {exc}", EXIT_CONFIG)
    logging.getLogger().setLevel(settings.log_level)
    log_handler.setFormatter(formatter(settings.log_format))
    # Migrations say a lot at INFO; only their problems are worth a line.
    logging.getLogger("alembic").setLevel(
        max(logging.WARNING, logging.getLevelName(settings.log_level))
    )
    try:
        return _command(settings, args, fail)
    except KeyboardInterrupt:  # Ctrl-C outside `run` (which stops cleanly on it)
        return fail("interrupted", EXIT_INTERRUPTED)
    except Exception:  # Inloop's own bug: the traceback is for its developers (masked)
        log.critical("inloop %s stopped on an unexpected error", args.command, exc_info=True)
        return EXIT_UNAVAILABLE


def _command(settings: Settings, args: argparse.Namespace, fail: Callable[[str, int], int]) -> int:
    if args.command == "check-config":
        return _check_config(settings)
    try:
        if args.command == "digest":
            return _digest(settings, args, fail)
        if args.command == "customer":
            return _customer(settings, args, fail)
        if args.command == "db":
            return asyncio.run(_db_upgrade(settings))
        if args.command == "status":
            return asyncio.run(_status(settings))
        # Before anything starts (the console's welcome, the database): a port that is
        # taken is a setting to change, said in one line.
        problem = _cannot_listen(_listeners(settings))
        if problem:
            return fail(problem, EXIT_CONFIG)
        _say_webhook(settings)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_run(settings))
    except StartError as exc:  # a platform refused to start: a token, a password
        return fail(str(exc), EXIT_CONFIG)
    except SchemaTooNew as exc:  # a newer Inloop migrated the database: run that one
        return fail(str(exc), EXIT_CONFIG)
    except (DBAPIError, NoAnswer) as exc:
        return fail(_database_problem(settings, exc), EXIT_UNAVAILABLE)
    except OSError as exc:
        return fail(*_os_problem(settings, exc))
    return 0


def _reason(exc: BaseException) -> str:
    """The first line of what went wrong, as the end of a sentence."""
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    else:
        text = str(getattr(exc, "orig", None) or exc)
    text = (text.splitlines() or [type(exc).__name__])[0]
    # socket.create_server adds where it was binding: the message says that already
    text = text.split(" (while attempting to bind", 1)[0]
    return text[:1].lower() + text[1:]


def _database_problem(settings: Settings, exc: BaseException) -> str:
    return f"cannot use the database {redact(settings.database_url)}: {_reason(exc)}"


def _os_problem(settings: Settings, exc: OSError) -> tuple[str, int]:
    """Name what failed: a file, a port, or (a connection) the database."""
    if exc.filename is not None:
        return f"cannot use {exc.filename}: {_reason(exc)}", EXIT_UNAVAILABLE
    listeners = _listeners(settings)
    if exc.errno in _BIND_ERRORS and listeners:
        # Taken between the check at start and the bind: say which ports it may be.
        where = " or ".join(f"{x.address} ({x.port_variable})" for x in listeners)
        return f"cannot listen on {where}: {_reason(exc)}", EXIT_CONFIG
    if not settings.is_sqlite:
        # a PostgreSQL server refusing or not answering the connection
        return _database_problem(settings, exc), EXIT_UNAVAILABLE
    return _reason(exc), EXIT_UNAVAILABLE


def _listeners(settings: Settings) -> list[Listener]:
    """The ports `inloop run` will listen on with these settings."""
    listeners = []
    if settings.intake_secret:
        listeners.append(
            Listener(settings.intake_host, settings.intake_port, "INTAKE_HOST", "INTAKE_PORT")
        )
    if settings.slack_bot_token and not settings.slack_socket_mode:
        # Slack's HTTP mode listens on every interface (bot/platforms/slack/adapter.py)
        listeners.append(Listener("0.0.0.0", settings.slack_http_port, "", "SLACK_HTTP_PORT"))
    if settings.metrics_port is not None:
        listeners.append(
            Listener(settings.metrics_host, settings.metrics_port, "METRICS_HOST", "METRICS_PORT")
        )
    return listeners


def _cannot_listen(listeners: Sequence[Listener]) -> str:
    """Why one of the listeners could not listen, or "" when all of them can.

    Each port is bound as the server binds it, and all are held until the last one is
    tried, so that two settings naming one port are caught as well.
    """
    with contextlib.ExitStack() as held:
        for index, listener in enumerate(listeners):
            try:
                held.enter_context(socket.create_server((listener.host, listener.port)))
            except OSError as exc:
                # not this machine's address, or no such host (getaddrinfo's errors are < 0)
                host_wrong = exc.errno == errno.EADDRNOTAVAIL or (exc.errno or 0) < 0
                variable = listener.host_variable if host_wrong else listener.port_variable
                variable += "".join(
                    f", the same as {other.port_variable}"
                    for other in listeners[:index]
                    if other.port == listener.port and not host_wrong
                )
                return f"cannot listen on {listener.address} ({variable}): {_reason(exc)}"
    return ""


def _say_webhook(settings: Settings) -> None:
    """The console keeps INFO logs quiet: say in one line that the webhook is on, and where.

    Said as it starts, its address just found free; if the bind fails after all, the
    run stops with the line that says so.
    """
    if settings.slack_bot_token or settings.matrix_homeserver or not settings.intake_secret:
        return  # a server logs it at INFO
    print(f"Webhook listening on {_webhook_url(settings)}", flush=True)


def _webhook_url(settings: Settings) -> str:
    from bot.intake.webhook import WEBHOOK_PATH  # aiohttp: only when there is a webhook

    if settings.intake_port == 0:  # the system picks the port when it is bound
        return f"{settings.intake_host}, on a free port (INTAKE_PORT=0), at {WEBHOOK_PATH}"
    return f"http://{settings.intake_host}:{settings.intake_port}{WEBHOOK_PATH}"


async def _run(settings: Settings) -> None:
    from bot.app import run

    await run(settings)


def _digest(settings: Settings, args: argparse.Namespace, fail: Callable[[str, int], int]) -> int:
    from bot.app import export_digest

    try:
        body, png = asyncio.run(export_digest(settings, args.week, args.team, args.format))
    except ValueError as exc:
        return fail(str(exc), EXIT_CONFIG)
    try:
        if args.out:
            Path(args.out).write_text(body, encoding="utf-8")
        else:
            sys.stdout.write(body if body.endswith("\n") else body + "\n")
        if args.chart:
            Path(args.chart).write_bytes(png)
    except OSError as exc:
        option = "--chart" if args.chart and exc.filename == args.chart else "--out"
        return fail(f"cannot write {exc.filename} ({option}): {_reason(exc)}", EXIT_CONFIG)
    return 0


def _customer(settings: Settings, args: argparse.Namespace, fail: Callable[[str, int], int]) -> int:
    """`inloop customer export REF [--out FILE]`, `inloop customer erase REF [--confirm]`."""
    from bot.app import erase_customer, export_customer

    try:
        if args.customer_command == "erase":
            said = asyncio.run(erase_customer(settings, args.ref, confirm=args.confirm))
            print(said)
            # without --confirm nothing was erased: a script must not take it for done
            return 0 if args.confirm else EXIT_CONFIG
        body = asyncio.run(export_customer(settings, args.ref))
    except ValueError as exc:
        return fail(str(exc), EXIT_CONFIG)
    try:
        if args.out:
            Path(args.out).write_bytes(body)
        else:
            sys.stdout.write(body.decode("utf-8"))
    except OSError as exc:
        return fail(f"cannot write {exc.filename} (--out): {_reason(exc)}", EXIT_CONFIG)
    return 0


async def _db_upgrade(settings: Settings) -> int:
    from bot.app import on_database
    from storage.database import Database
    from storage.migrate import current_revision, upgrade

    async def upgraded(db: Database) -> str | None:
        await upgrade(db)
        return await current_revision(db)

    print(f"database is at revision {await on_database(settings, upgraded)}")
    return 0


async def _status(settings: Settings) -> int:
    from bot.app import status

    for line in await status(settings):
        print(line)
    return 0


def _check_config(settings: Settings) -> int:
    print("configuration is valid")
    print(f"  database: {describe_database(settings.database_url)}")
    print(f"  admins: {', '.join(settings.admins) or '(none)'}")
    print(f"  language: {settings.language}, default time zone: {settings.default_tz}")
    if settings.slack_bot_token:
        mode = (
            "Socket Mode"
            if settings.slack_socket_mode
            else f"HTTP mode on port {settings.slack_http_port}"
        )
        print(f"  platforms: slack ({mode})")
    if settings.matrix_homeserver:
        print(f"  platforms: matrix ({settings.matrix_user_id} on {settings.matrix_homeserver})")
    if not settings.slack_bot_token and not settings.matrix_homeserver:
        print("  platforms: console (no Slack or Matrix settings)")
    if settings.intake_secret:
        print(f"  webhook: on, {_webhook_url(settings)}")
    else:
        print("  webhook: off (INTAKE_SECRET is not set)")
    if settings.metrics_port is not None:
        also = " and on the webhook's port" if settings.intake_secret else ""
        where = f"http://{settings.metrics_host}:{settings.metrics_port}/metrics"
        print(f"  metrics: on, {where}{also}")
    else:
        print("  metrics: off (METRICS_PORT is not set)")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inloop",
        description="Inloop keeps your company's customer dialogue in-house.",
    )
    parser.add_argument(
        "--env-file",
        help="file of settings to read; it must exist (default: .env, if there is one)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser(
        "run",
        help="start the bot (the console chat when no Slack or Matrix settings are given)",
        description="Start Inloop: migrate the database, then run the configured platforms.",
    )
    db = sub.add_parser("db", help="database maintenance", description="Database maintenance.")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    db_sub.add_parser(
        "upgrade", help="apply the migrations", description="Apply every pending migration."
    )
    sub.add_parser(
        "check-config",
        help="validate the settings and say what would start",
        description="Read the environment and .env, validate them, and print a summary.",
    )
    sub.add_parser(
        "status",
        help="which instance runs each duty, and what waits in the outbox",
        description="Print which instance holds each duty (timers, Matrix, feeds) and"
        " since when, and the outbox's pending rows and oldest age per platform.",
    )
    report = sub.add_parser(
        "digest",
        help="export a week's digest (text, CSV or JSON) and its chart",
        description="Export the weekly digest, for managers who want a spreadsheet.",
    )
    report.add_argument("--week", default="last", help="this, last or YYYY-Www (default: last)")
    report.add_argument("--team", default="", help="only this team's conversations")
    report.add_argument("--format", choices=("text", "csv", "json"), default="text")
    report.add_argument("--out", help="write the figures to this file (default: standard output)")
    report.add_argument("--chart", help="write the chart (PNG) to this file")
    customer = sub.add_parser(
        "customer",
        help="a customer's data: export it, or erase it at their request",
        description="The customer's rights over their data (the chat's `customer export` "
        "and `customer erase`). REF: #N (the customer of conversation N) or source:handle.",
    )
    customer_sub = customer.add_subparsers(dest="customer_command", metavar="ACTION", required=True)
    export = customer_sub.add_parser(
        "export",
        help="everything Inloop holds about the customer, as JSON",
        description="Export everything Inloop holds about the customer, as JSON.",
    )
    export.add_argument("ref", metavar="REF")
    export.add_argument("--out", help="write the JSON to this file (default: standard output)")
    erase = customer_sub.add_parser(
        "erase",
        help="erase the customer's data (says what would go; --confirm erases it)",
        description="Erase the customer's identities, names, handles, texts, links and "
        "advice texts; cards already posted are edited to say so.",
    )
    erase.add_argument("ref", metavar="REF")
    erase.add_argument("--confirm", action="store_true", help="erase it (for good)")
    sub.add_parser("version", help="print the version", description="Print Inloop's version.")
    return parser


if __name__ == "__main__":
    sys.exit(main())
