"""`inloop` command line: run, db upgrade, check-config, version."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.exc import DBAPIError

from bot import __version__
from bot.config import ConfigError, Settings, load_settings, read_environment, redact
from bot.platform import StartError

EXIT_CONFIG = 2
EXIT_UNAVAILABLE = 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_CONFIG
    if args.command == "version":
        print(f"inloop {__version__}")
        return 0
    try:
        env = read_environment(Path(args.env_file), required=args.env_file != ".env")
        settings = load_settings(env)
    except ConfigError as exc:
        print(f"inloop: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Migrations say a lot at INFO; only their problems are worth a line.
    logging.getLogger("alembic").setLevel(
        max(logging.WARNING, logging.getLevelName(settings.log_level))
    )
    if args.command == "check-config":
        return _check_config(settings)
    try:
        if args.command == "digest":
            return _digest(settings, args)
        if args.command == "db":
            return asyncio.run(_db_upgrade(settings))
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_run(settings))
    except StartError as exc:  # a platform refused to start: a token, a password
        print(f"inloop: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (OSError, DBAPIError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        print(
            f"inloop: cannot use the database {redact(settings.database_url)}: {reason}",
            file=sys.stderr,
        )
        return EXIT_UNAVAILABLE
    return 0


async def _run(settings: Settings) -> None:
    from bot.app import run

    await run(settings)


def _digest(settings: Settings, args: argparse.Namespace) -> int:
    from bot.app import export_digest

    try:
        body, png = asyncio.run(export_digest(settings, args.week, args.team, args.format))
    except ValueError as exc:
        print(f"inloop: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.out:
        Path(args.out).write_text(body, encoding="utf-8")
    else:
        sys.stdout.write(body if body.endswith("\n") else body + "\n")
    if args.chart:
        Path(args.chart).write_bytes(png)
    return 0


async def _db_upgrade(settings: Settings) -> int:
    from storage.database import Database
    from storage.migrate import current_revision, upgrade

    db = Database(settings.database_url)
    try:
        await upgrade(db)
        print(f"database is at revision {await current_revision(db)}")
    finally:
        await db.dispose()
    return 0


def _check_config(settings: Settings) -> int:
    print("configuration is valid")
    print(f"  database: {'SQLite' if settings.is_sqlite else 'PostgreSQL'}")
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
    else:
        print("  platforms: console (no Slack or Matrix settings)")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inloop",
        description="Inloop keeps your company's customer dialogue in-house.",
    )
    parser.add_argument(
        "--env-file", default=".env", help="file of settings to read (default: .env)"
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
    sub.add_parser("version", help="print the version", description="Print Inloop's version.")
    return parser


if __name__ == "__main__":
    sys.exit(main())
