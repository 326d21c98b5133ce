"""One frozen settings object, read once from the environment and `.env`, validated, passed down.

This is the only module that reads the environment. A wrong value raises
`ConfigError` naming the variable; the CLI prints that one line and exits 2.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

from dotenv import dotenv_values
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from bot.events import PersonId, platform_of
from bot.recurrence import valid_zone

LANGUAGES = ("en", "it")
PLATFORMS = ("console", "slack", "matrix")
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///inloop.db"
SLACK_API_URL = "https://slack.com/api/"
#: the settings whose values are masked wherever Inloop prints (bot/masking.py), with
#: the password of DATABASE_URL
SECRET_SETTINGS = (
    "INTAKE_SECRET",
    "SLACK_BOT_TOKEN",
    "SLACK_APP_TOKEN",
    "SLACK_SIGNING_SECRET",
    "MATRIX_PASSWORD",
    "MATRIX_ACCESS_TOKEN",
)
#: every variable Inloop reads (a test holds this to what `load_settings` asks for)
KNOWN_SETTINGS = frozenset(
    {
        "DATABASE_URL",
        "INLOOP_ADMINS",
        "INLOOP_LANGUAGE",
        "INLOOP_DEFAULT_TZ",
        "INLOOP_LOG_LEVEL",
        "INLOOP_LOG_FORMAT",
        "OUTBOX_MAX_ATTEMPTS",
        "INTAKE_SECRET",
        "INTAKE_HOST",
        "INTAKE_PORT",
        "METRICS_HOST",
        "METRICS_PORT",
        "FEED_POLL_MINUTES",
        "DIGEST_TZ",
        "CLAIM_TARGET_MINUTES",
        "RELATIONSHIP_HOLD_MINUTES",
        "RETENTION_DAYS",
        "REPLY_TARGET_MINUTES",
        "ADVICE_SLA_HOURS",
        "SLACK_BOT_TOKEN",
        "SLACK_APP_TOKEN",
        "SLACK_SIGNING_SECRET",
        "SLACK_HTTP_PORT",
        "SLACK_API_URL",
        "MATRIX_HOMESERVER",
        "MATRIX_USER_ID",
        "MATRIX_PASSWORD",
        "MATRIX_ACCESS_TOKEN",
        "MATRIX_DEVICE_ID",
        "MATRIX_ALLOWED_SERVERS",
        "MATRIX_STORE_DIR",
    }
)
#: a name with one of these prefixes is meant for Inloop: unknown, it is a typo
_OURS = ("INLOOP_", "SLACK_", "MATRIX_", "INTAKE_", "METRICS_")


class ConfigError(Exception):
    def __init__(self, variable: str, problem: str):
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


@dataclass(frozen=True)
class Settings:
    database_url: str
    admins: tuple[PersonId, ...]
    language: str
    default_tz: str
    log_level: str
    outbox_max_attempts: int
    #: "text" (for people) or "json" (one object a line, for log shippers)
    log_format: str = "text"
    #: the webhook runs only when a secret is set; repr=False keeps it out of any log line
    intake_secret: str = field(default="", repr=False)
    intake_host: str = "127.0.0.1"
    intake_port: int = 8080
    #: metrics are on when a port is set (None: off): /metrics there, and on the webhook's port
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    feed_poll_minutes: int = 10
    #: the weekly digest: its weeks are ISO weeks in this zone; the claim target it counts
    digest_tz: str = "UTC"
    claim_target_minutes: int = 60
    #: a returning customer's new conversation is offered to their relationship owner
    #: alone for this long; 0: no hold, anyone may claim at once
    relationship_hold_minutes: int = 30
    #: customer texts of conversations resolved longer ago than this many days are
    #: erased, daily; None: kept for ever
    retention_days: int | None = None
    #: a team's default time to reply to a claimed conversation before its owner is nudged
    reply_target_minutes: int = 240
    #: an advice request unanswered this long is chased (consultant reminded, owner told)
    advice_sla_hours: int = 24
    # -- Slack -------------------------------------------------------------------------
    #: Slack runs only when a bot token is set
    slack_bot_token: str = field(default="", repr=False)
    #: Socket Mode when set (no public URL needed), else HTTP mode
    slack_app_token: str = field(default="", repr=False)
    slack_signing_secret: str = field(default="", repr=False)
    slack_http_port: int = 3000
    slack_api_url: str = SLACK_API_URL

    @property
    def slack_socket_mode(self) -> bool:
        return bool(self.slack_app_token)

    # -- Matrix (runs when MATRIX_HOMESERVER and MATRIX_USER_ID are set) --
    matrix_homeserver: str = ""
    matrix_user_id: str = ""
    matrix_password: str = field(default="", repr=False)
    matrix_access_token: str = field(default="", repr=False)
    matrix_device_id: str = ""
    #: invites from people of these servers are accepted as well as staff's
    matrix_allowed_servers: tuple[str, ...] = ()
    #: where an older Inloop kept the encryption keys (one directory per bot account):
    #: imported into the database once (bot/platforms/matrix/key_store.py)
    matrix_store_dir: str = ""

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@dataclass(frozen=True)
class Environment:
    """What the settings are read from: the process environment over the env file."""

    values: Mapping[str, str]
    #: the names the env file set (the others come from the process environment)
    from_file: frozenset[str] = frozenset()
    #: the env file's name as the user gave it
    file_name: str = ".env"

    def unknown_settings(self) -> list[str]:
        """A warning for each INLOOP_/SLACK_/MATRIX_/INTAKE_ name Inloop does not read.

        Such a name is a typo (`INLOOP_ADMIN`) that would otherwise be silently
        ignored: the warning names the closest setting there is.
        """
        warnings = []
        for name in sorted(self.values):
            if not name.startswith(_OURS) or name in KNOWN_SETTINGS:
                continue
            where = self.file_name if name in self.from_file else "the environment"
            close = difflib.get_close_matches(name, sorted(KNOWN_SETTINGS), n=1)
            hint = f"did you mean {close[0]}?" if close else "no Inloop setting is named like it"
            warnings.append(f"{name} (in {where}) is not an Inloop setting and is ignored: {hint}")
        return warnings

    def secrets(self) -> tuple[str, ...]:
        """The values to mask wherever Inloop prints, whether or not they are valid."""
        values = [self.values.get(name, "") for name in SECRET_SETTINGS]
        values += [value.strip() for value in values]
        return tuple(v for v in values if v) + database_passwords(
            self.values.get("DATABASE_URL", "")
        )


def read_environment(
    env_file: Path | None = Path(".env"), *, required: bool = False
) -> Environment:
    """The process environment over the values of `.env` (the environment wins).

    A missing `.env` is fine (defaults); a file named on purpose must exist.
    """
    values: dict[str, str] = {}
    if required and env_file is not None and not env_file.is_file():
        raise ConfigError("--env-file", f"{str(env_file)!r} does not exist")
    if env_file is not None and env_file.is_file():
        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    from_file = frozenset(values)
    values.update(os.environ)
    return Environment(values, from_file, str(env_file))


def load_settings(env: Mapping[str, str]) -> Settings:
    def get(name: str, default: str) -> str:
        return env.get(name, "").strip() or default

    slack_bot_token = _token("SLACK_BOT_TOKEN", get("SLACK_BOT_TOKEN", ""), "xoxb-")
    slack_app_token = _token("SLACK_APP_TOKEN", get("SLACK_APP_TOKEN", ""), "xapp-")
    slack_signing_secret = get("SLACK_SIGNING_SECRET", "")
    if slack_bot_token and not slack_app_token and not slack_signing_secret:
        raise ConfigError(
            "SLACK_SIGNING_SECRET",
            "is needed for Slack's HTTP mode; set it, or set SLACK_APP_TOKEN for Socket Mode",
        )
    return Settings(
        database_url=_database_url(get("DATABASE_URL", DEFAULT_DATABASE_URL)),
        admins=_people("INLOOP_ADMINS", get("INLOOP_ADMINS", "console:admin")),
        language=_choice("INLOOP_LANGUAGE", get("INLOOP_LANGUAGE", "en").lower(), LANGUAGES),
        default_tz=_timezone("INLOOP_DEFAULT_TZ", get("INLOOP_DEFAULT_TZ", "UTC")),
        log_level=_choice(
            "INLOOP_LOG_LEVEL",
            get("INLOOP_LOG_LEVEL", "INFO").upper(),
            ("DEBUG", "INFO", "WARNING", "ERROR"),
        ),
        outbox_max_attempts=_int("OUTBOX_MAX_ATTEMPTS", get("OUTBOX_MAX_ATTEMPTS", "12"), 1, 100),
        log_format=_choice(
            "INLOOP_LOG_FORMAT", get("INLOOP_LOG_FORMAT", "text").lower(), ("text", "json")
        ),
        intake_secret=_secret("INTAKE_SECRET", env.get("INTAKE_SECRET", "").strip()),
        intake_host=get("INTAKE_HOST", "127.0.0.1"),
        intake_port=_int("INTAKE_PORT", get("INTAKE_PORT", "8080"), 0, 65535),
        metrics_port=(
            _int("METRICS_PORT", get("METRICS_PORT", ""), 0, 65535)
            if get("METRICS_PORT", "")
            else None
        ),
        metrics_host=get("METRICS_HOST", "127.0.0.1"),
        feed_poll_minutes=_int("FEED_POLL_MINUTES", get("FEED_POLL_MINUTES", "10"), 1, 1440),
        digest_tz=_timezone("DIGEST_TZ", get("DIGEST_TZ", get("INLOOP_DEFAULT_TZ", "UTC"))),
        claim_target_minutes=_int(
            "CLAIM_TARGET_MINUTES", get("CLAIM_TARGET_MINUTES", "60"), 1, 7 * 24 * 60
        ),
        relationship_hold_minutes=_int(
            "RELATIONSHIP_HOLD_MINUTES", get("RELATIONSHIP_HOLD_MINUTES", "30"), 0, 7 * 24 * 60
        ),
        retention_days=(
            _int("RETENTION_DAYS", get("RETENTION_DAYS", ""), 1, 100 * 366)
            if get("RETENTION_DAYS", "")
            else None
        ),
        reply_target_minutes=_int(
            "REPLY_TARGET_MINUTES", get("REPLY_TARGET_MINUTES", "240"), 1, 7 * 24 * 60
        ),
        advice_sla_hours=_int("ADVICE_SLA_HOURS", get("ADVICE_SLA_HOURS", "24"), 1, 24 * 30),
        slack_bot_token=slack_bot_token,
        slack_app_token=slack_app_token,
        slack_signing_secret=slack_signing_secret,
        slack_http_port=_int("SLACK_HTTP_PORT", get("SLACK_HTTP_PORT", "3000"), 0, 65535),
        slack_api_url=_http_url("SLACK_API_URL", get("SLACK_API_URL", SLACK_API_URL)),
        **_matrix(env, get),
    )


_MATRIX_USER = re.compile(r"@[^:\s]+:[A-Za-z0-9.\-\[\]:]+")


def _matrix(env: Mapping[str, str], get: Callable[[str, str], str]) -> dict[str, Any]:
    homeserver = get("MATRIX_HOMESERVER", "").rstrip("/")
    user_id = get("MATRIX_USER_ID", "")
    password = env.get("MATRIX_PASSWORD", "").strip()
    token = env.get("MATRIX_ACCESS_TOKEN", "").strip()
    device = get("MATRIX_DEVICE_ID", "")
    servers = tuple(
        s.strip().lower() for s in get("MATRIX_ALLOWED_SERVERS", "").split(",") if s.strip()
    )
    database_url = _database_url(get("DATABASE_URL", DEFAULT_DATABASE_URL))
    store = get("MATRIX_STORE_DIR", _default_store_dir(database_url))
    if not homeserver and not user_id:
        return {"matrix_allowed_servers": servers, "matrix_store_dir": store}
    if not homeserver:
        raise ConfigError("MATRIX_HOMESERVER", "is required when MATRIX_USER_ID is set")
    if not homeserver.startswith(("http://", "https://")):
        raise ConfigError(
            "MATRIX_HOMESERVER", f"{homeserver!r} must start with https:// or http://"
        )
    if not user_id:
        raise ConfigError("MATRIX_USER_ID", "is required when MATRIX_HOMESERVER is set")
    if not _MATRIX_USER.fullmatch(user_id):
        raise ConfigError(
            "MATRIX_USER_ID", f"{user_id!r} is not a Matrix user id like @inloop:example.org"
        )
    if token and not device:
        raise ConfigError("MATRIX_DEVICE_ID", "is required with MATRIX_ACCESS_TOKEN")
    if not password and not token:
        raise ConfigError(
            "MATRIX_PASSWORD", "set MATRIX_PASSWORD, or MATRIX_ACCESS_TOKEN and MATRIX_DEVICE_ID"
        )
    return {
        "matrix_homeserver": homeserver,
        "matrix_user_id": user_id,
        "matrix_password": password,
        "matrix_access_token": token,
        "matrix_device_id": device,
        "matrix_allowed_servers": servers,
        "matrix_store_dir": store,
    }


def _default_store_dir(database_url: str) -> str:
    """Next to the SQLite file; in the working directory with PostgreSQL."""
    if database_url.startswith("sqlite"):
        path = database_url.split(":///", 1)[-1]
        if path and path != ":memory:":
            return str(Path(path).parent / "matrix-store")
    return "matrix-store"


def _database_url(value: str) -> str:
    shown = redact(value)
    if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        got = f" (got {shown!r})" if shown else ""
        raise ConfigError(
            "DATABASE_URL",
            f"must start with sqlite+aiosqlite:// or postgresql+asyncpg://{got}",
        )
    # SQLAlchemy's own parse fails later with the password in its message (a port
    # that is not a number, an @ inside the password): parse here, say it without it.
    try:
        url = make_url(value)
        port = url.port
    except (ArgumentError, ValueError):
        raise ConfigError(
            "DATABASE_URL",
            f"{shown!r} is not a valid URL: the port must be a number, and a password "
            "with @ : / or % in it must be percent-encoded (@ is %40)",
        ) from None
    # An @ or / left unencoded in a password does not always fail to parse: the
    # rest of the password then reads as part of the host or the database name
    # (`bob:pw@rest@host` is host `rest@host`), and would be shown as such.
    authority, _, path = value.split("?", 1)[0].partition("://")[2].partition("/")
    if url.get_backend_name() == "postgresql" and (authority.count("@") > 1 or "@" in path):
        raise ConfigError(
            "DATABASE_URL",
            f"{shown!r} is not a valid URL: a password with @ : / or % in it must be "
            "percent-encoded (@ is %40, / is %2F)",
        )
    if port is not None and not 0 < port < 65536:
        raise ConfigError("DATABASE_URL", f"{shown!r}: port {port} is not between 1 and 65535")
    return value


def redact(url: str) -> str:
    """What of a database URL can be shown: never a password, never a query.

    Everything up to the last `@` is credentials, whether or not it parses: only a
    user name (before the first `:`) is kept. A value that is no URL at all, and has
    no `@` to tell its credentials apart, is not shown ("").
    """
    url = url.split("?", 1)[0]  # `?password=` is a way to pass it too
    scheme, sep, rest = url.partition("://")
    if not sep:
        if "@" not in url:
            return ""
        return f"***@{url.rpartition('@')[2]}"
    if "@" in rest:
        creds, _, host = rest.rpartition("@")
        user = creds.split(":", 1)[0].split("@", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


def database_passwords(url: str) -> tuple[str, ...]:
    """The password(s) a database URL holds, as written and as decoded, to be masked."""
    found: list[str] = []
    rest = url.partition("://")[2] or url
    creds = rest.split("?", 1)[0].rpartition("@")[0]
    if ":" in creds:
        found.append(creds.split(":", 1)[1])
    found += [v for k, v in parse_qsl(url.partition("?")[2]) if k.lower() == "password"]
    variants = {form for p in found for form in (p, unquote(p), quote(unquote(p), safe=""))}
    return tuple(v for v in variants if v)


def describe_database(database_url: str) -> str:
    """Which database, for `check-config`: the SQLite file, or the server and database
    (never the password)."""
    url: URL = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            return "SQLite, in memory (nothing is kept)"
        return f"SQLite, file {Path(url.database).resolve()}"
    where = url.host or str(url.query.get("host", "")) or "the local socket"
    if url.port:
        where += f":{url.port}"
    user = f" as {url.username}" if url.username else ""
    return f"PostgreSQL, database {url.database or '(default)'} on {where}{user}"


def _people(variable: str, value: str) -> tuple[PersonId, ...]:
    people = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        try:
            platform = platform_of(item)
        except ValueError:
            raise ConfigError(
                variable, f"{item!r} is not platform-qualified, write e.g. slack:U0123"
            ) from None
        if platform not in PLATFORMS:
            raise ConfigError(variable, f"{item!r}: unknown platform {platform!r}")
        if platform == "console":
            item = item.lower()  # console names are case-insensitive, as `/as` treats them
        people.append(PersonId(item))
    return tuple(people)


def _secret(variable: str, value: str) -> str:
    if value and len(value) < 16:
        raise ConfigError(variable, "is too short to be a secret: use at least 16 characters")
    return value


def _choice(variable: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(variable, f"{value!r} is not one of {', '.join(allowed)}")
    return value


def _timezone(variable: str, value: str) -> str:
    if not valid_zone(value):
        raise ConfigError(variable, f"{value!r} is not an IANA time zone (e.g. Europe/Rome)")
    return value


def _int(variable: str, value: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(variable, f"{value!r} is not a whole number") from None
    if not low <= number <= high:
        raise ConfigError(variable, f"{number} is not between {low} and {high}")
    return number


def _token(variable: str, value: str, prefix: str) -> str:
    # A bot token pasted as the app token (or the reverse) fails late and obscurely at Slack.
    if value and not value.startswith(prefix):
        raise ConfigError(variable, f"must start with {prefix} (this is not that kind of token)")
    return value


def _http_url(variable: str, value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ConfigError(variable, f"{value!r} is not an http(s) URL")
    return value if value.endswith("/") else value + "/"
