"""The `inloop` command as an operator uses it: a real process, its exit code, what it prints."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from importlib.metadata import version
from pathlib import Path

import pytest

from bot.intake.webhook import sign

TIMEOUT = 60
_SETTINGS = (
    "DATABASE_URL",
    "INLOOP_",
    "OUTBOX_",
    "INTAKE_",
    "METRICS_",
    "FEED_",
    "SLACK_",
    "MATRIX_",
)
EXIT_CONFIG = 2
SCHEMA = {
    "alembic_version",
    "audit_log",
    "conversation",
    "mention",
    "outbox",
    "person",
    "processed_event",
    "team",
}


def inloop(
    cwd: Path, *args: str, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """`inloop ARGS` in `cwd`, with none of the caller's settings, plus `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(_SETTINGS)}
    clean["PYTHONIOENCODING"] = "utf-8"
    clean.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=cwd,
        env=clean,
        timeout=TIMEOUT,
        check=False,
    )


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {name for (name,) in rows}


# -- version and help --------------------------------------------------------------------


def test_version_prints_the_installed_version(tmp_path: Path) -> None:
    done = inloop(tmp_path, "version")

    assert done.returncode == 0
    assert done.stdout == f"inloop {version('inloop')}\n"
    assert done.stderr == ""


@pytest.mark.parametrize(
    "command",
    [[], ["run"], ["db"], ["db", "upgrade"], ["check-config"], ["version"]],
    ids=lambda c: " ".join(c) or "inloop",
)
def test_every_command_has_help(tmp_path: Path, command: list[str]) -> None:
    done = inloop(tmp_path, *command, "--help")

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: inloop {' '.join(command)}".rstrip())
    assert done.stderr == ""
    # asking for help touches no database
    assert list(tmp_path.iterdir()) == []


def test_top_level_help_lists_every_command(tmp_path: Path) -> None:
    done = inloop(tmp_path, "--help")

    for command in ("run", "db", "check-config", "version", "--env-file"):
        assert command in done.stdout


def test_no_command_shows_the_usage_and_fails(tmp_path: Path) -> None:
    done = inloop(tmp_path)

    assert done.returncode == EXIT_CONFIG
    assert "usage: inloop" in done.stdout + done.stderr


def test_db_without_an_action_shows_its_usage_and_fails(tmp_path: Path) -> None:
    done = inloop(tmp_path, "db")

    assert done.returncode == EXIT_CONFIG
    assert "usage: inloop db" in done.stderr
    assert list(tmp_path.iterdir()) == []


# -- check-config ------------------------------------------------------------------------


def test_check_config_with_nothing_set(tmp_path: Path) -> None:
    done = inloop(tmp_path, "check-config")

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "configuration is valid"
    # which file: the one `inloop run` would create here
    assert f"  database: SQLite, file {tmp_path.resolve() / 'inloop.db'}" in done.stdout
    assert "admins: console:admin" in done.stdout
    assert "language: en, default time zone: UTC" in done.stdout
    assert "console" in done.stdout
    # checking creates no database file
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"SLACK_BOT_TOKEN": "xoxb-1-secret", "SLACK_APP_TOKEN": "xapp-1-secret"}, "Socket Mode"),
        (
            {"SLACK_BOT_TOKEN": "xoxb-1-secret", "SLACK_SIGNING_SECRET": "secret-signing"},
            "HTTP mode on port 3000",
        ),
    ],
)
def test_check_config_says_slack_and_how_it_connects(
    tmp_path: Path, env: dict[str, str], says: str
) -> None:
    done = inloop(tmp_path, "check-config", env=env)

    assert done.returncode == 0, done.stderr
    assert f"platforms: slack ({says})" in done.stdout
    assert "secret" not in done.stdout + done.stderr


def test_check_config_never_shows_the_database_password(tmp_path: Path) -> None:
    done = inloop(
        tmp_path,
        "check-config",
        env={
            "DATABASE_URL": "postgresql+asyncpg://inloop:secret@db.example:5432/inloop",
            "INLOOP_ADMINS": "slack:U0123,matrix:@ann:example.org",
            "INLOOP_LANGUAGE": "it",
            "INLOOP_DEFAULT_TZ": "Europe/Rome",
        },
    )

    assert done.returncode == 0, done.stderr
    assert "  database: PostgreSQL, database inloop on db.example:5432 as inloop" in done.stdout
    assert "admins: slack:U0123, matrix:@ann:example.org" in done.stdout
    assert "language: it, default time zone: Europe/Rome" in done.stdout
    assert "secret" not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("INLOOP_DEFAULT_TZ", "Mars/Base"),
        ("INLOOP_LANGUAGE", "fr"),
        ("DATABASE_URL", "mysql://u:secret@h/db"),
        ("DATABASE_URL", "postgresql://u:secret@h/db"),
        ("INLOOP_ADMINS", "ann"),
        ("INLOOP_LOG_LEVEL", "loud"),
        ("OUTBOX_MAX_ATTEMPTS", "0"),
    ],
)
def test_a_bad_setting_is_one_line_naming_the_variable(
    tmp_path: Path, variable: str, value: str
) -> None:
    done = inloop(tmp_path, "check-config", env={variable: value})

    assert done.returncode == EXIT_CONFIG
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"inloop: configuration error: {variable}: ")
    assert "secret" not in done.stderr


@pytest.mark.parametrize("command", [["run"], ["db", "upgrade"]])
def test_every_command_refuses_to_start_on_a_bad_setting(
    tmp_path: Path, command: list[str]
) -> None:
    env = {"INLOOP_LANGUAGE": "fr", "DATABASE_URL": sqlite_url(tmp_path / "inloop.db")}

    done = inloop(tmp_path, *command, env=env)

    assert done.returncode == EXIT_CONFIG
    assert done.stderr.splitlines() == [
        "inloop: configuration error: INLOOP_LANGUAGE: 'fr' is not one of en, it"
    ]
    assert not (tmp_path / "inloop.db").exists()


# -- .env --------------------------------------------------------------------------------


def test_dot_env_in_the_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "# Inloop settings\n"
        "INLOOP_LANGUAGE=it\n"
        'INLOOP_DEFAULT_TZ="Europe/Rome"\n'
        "export INLOOP_ADMINS=slack:U0123\n"
    )

    done = inloop(tmp_path, "check-config")

    assert done.returncode == 0, done.stderr
    assert "language: it, default time zone: Europe/Rome" in done.stdout
    assert "admins: slack:U0123" in done.stdout


def test_the_environment_wins_over_dot_env(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("INLOOP_LANGUAGE=it\nINLOOP_DEFAULT_TZ=Europe/Rome\n")

    done = inloop(tmp_path, "check-config", env={"INLOOP_LANGUAGE": "en"})

    assert done.returncode == 0, done.stderr
    # the environment's language, .env's time zone
    assert "language: en, default time zone: Europe/Rome" in done.stdout


def test_a_bad_value_in_dot_env_is_reported_like_one_in_the_environment(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DATABASE_URL=mysql://inloop:secret@db.example/inloop\n")

    done = inloop(tmp_path, "check-config")

    assert done.returncode == EXIT_CONFIG
    assert len(done.stderr.splitlines()) == 1
    assert "DATABASE_URL" in done.stderr
    assert "secret" not in done.stdout + done.stderr


def test_a_misspelt_setting_in_dot_env_is_named_with_the_closest_one(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("INLOOP_ADMIN=console:luca\nINLOOP_LANGUAGE=it\n")

    done = inloop(tmp_path, "check-config")

    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        "inloop: warning: INLOOP_ADMIN (in .env) is not an Inloop setting and is ignored: "
        "did you mean INLOOP_ADMINS?"
    ]
    assert "admins: console:admin" in done.stdout  # it was ignored indeed


def test_a_misspelt_setting_in_the_environment_is_named_too(tmp_path: Path) -> None:
    done = inloop(tmp_path, "db", "upgrade", env={"SLACK_BOT_TOKNE": "xoxb-1-token"})

    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        "inloop: warning: SLACK_BOT_TOKNE (in the environment) is not an Inloop setting and "
        "is ignored: did you mean SLACK_BOT_TOKEN?"
    ]
    assert "xoxb-1-token" not in done.stderr


@pytest.mark.parametrize(
    "command",
    [["version"], ["check-config"], ["run"], ["db", "upgrade"], ["digest"]],
    ids=" ".join,
)
def test_every_command_refuses_a_missing_env_file(tmp_path: Path, command: list[str]) -> None:
    done = inloop(tmp_path, "--env-file", str(tmp_path / "missing.env"), *command)

    assert done.returncode == EXIT_CONFIG
    assert done.stderr.splitlines() == [
        f"inloop: configuration error: --env-file: '{tmp_path / 'missing.env'}' does not exist"
    ]
    assert done.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_env_file_option_reads_another_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("INLOOP_LANGUAGE=en\n")
    (tmp_path / "prod.env").write_text("INLOOP_LANGUAGE=it\n")

    done = inloop(tmp_path, "--env-file", "prod.env", "check-config")

    assert done.returncode == 0, done.stderr
    assert "language: it" in done.stdout


# -- db upgrade --------------------------------------------------------------------------


def test_db_upgrade_creates_the_schema_and_is_idempotent(tmp_path: Path) -> None:
    database = tmp_path / "inloop.db"
    database.touch()  # an empty SQLite file
    env = {"DATABASE_URL": sqlite_url(database)}

    first = inloop(tmp_path, "db", "upgrade", env=env)

    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("database is at revision ")
    assert tables(database) >= SCHEMA

    second = inloop(tmp_path, "db", "upgrade", env=env)

    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    assert tables(database) >= SCHEMA
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)
    # migrations are quiet at the default log level
    assert second.stderr == ""


def test_db_upgrade_keeps_what_the_bot_stored(tmp_path: Path) -> None:
    database = tmp_path / "inloop.db"
    env = {"DATABASE_URL": sqlite_url(database)}
    chat = inloop(tmp_path, "run", env=env, stdin="!inloop team add support\n/mention Ann: hello\n")
    assert chat.returncode == 0, chat.stderr

    done = inloop(tmp_path, "db", "upgrade", env=env)

    assert done.returncode == 0, done.stderr
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT name FROM team").fetchall() == [("support",)]
        assert db.execute("SELECT count(*) FROM conversation").fetchone() == (1,)
    again = inloop(tmp_path, "run", env=env, stdin="!inloop show 1\n")
    assert "Ann: hello" in again.stdout


@pytest.mark.parametrize("command", [("db", "upgrade"), ("run",)])
def test_an_older_inloop_on_a_database_a_newer_one_upgraded_says_so_and_exits_2(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    database = tmp_path / "inloop.db"
    env = {"DATABASE_URL": sqlite_url(database)}
    assert inloop(tmp_path, "db", "upgrade", env=env).returncode == 0
    with sqlite3.connect(database) as db:
        db.execute("UPDATE alembic_version SET version_num = '0099_future'")

    done = inloop(tmp_path, *command, env=env, stdin="!inloop teams\n")

    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "inloop: the database is at revision 0099_future, which this version of Inloop "
        "does not know: it was upgraded by a newer Inloop. Run the newer version."
    ]
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [
            ("0099_future",)
        ]


def test_db_upgrade_on_an_unreachable_server_never_shows_the_password(tmp_path: Path) -> None:
    # port 1 on the loopback: nothing listens there, the connection is refused at once
    env = {"DATABASE_URL": "postgresql+asyncpg://inloop:secret@127.0.0.1:1/inloop"}

    done = inloop(tmp_path, "db", "upgrade", env=env)

    assert done.returncode != 0
    assert "secret" not in done.stdout + done.stderr


# -- what failed is named ----------------------------------------------------------------

SECRET = "a-webhook-secret-of-some-length"


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return int(sock.getsockname()[1])


def test_run_with_the_webhook_port_taken_names_the_port_and_starts_nothing(
    tmp_path: Path,
) -> None:
    database = tmp_path / "inloop.db"
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        env = {"INTAKE_SECRET": SECRET, "INTAKE_PORT": str(port)}

        done = inloop(tmp_path, "run", env={**env, "DATABASE_URL": sqlite_url(database)})

    assert done.returncode == EXIT_CONFIG
    assert done.stderr.splitlines() == [
        f"inloop: cannot listen on 127.0.0.1:{port} (INTAKE_PORT): address already in use"
    ]
    # said before the console's welcome, and before the database is touched
    assert done.stdout == ""
    assert not database.exists()


def test_run_with_a_webhook_host_of_another_machine_names_the_host(tmp_path: Path) -> None:
    # 192.0.2.1 is TEST-NET-1: never an address of this machine
    env = {"INTAKE_SECRET": SECRET, "INTAKE_HOST": "192.0.2.1", "INTAKE_PORT": "8080"}

    done = inloop(tmp_path, "run", env=env)

    assert done.returncode == EXIT_CONFIG
    assert done.stderr.splitlines() == [
        "inloop: cannot listen on 192.0.2.1:8080 (INTAKE_HOST): cannot assign requested address"
    ]


@pytest.mark.parametrize("option", ["--out", "--chart"])
def test_digest_into_a_missing_directory_names_the_file(tmp_path: Path, option: str) -> None:
    target = tmp_path / "missing" / "digest.out"
    env = {"DATABASE_URL": sqlite_url(tmp_path / "inloop.db")}

    done = inloop(tmp_path, "digest", option, str(target), env=env)

    assert done.returncode == EXIT_CONFIG
    assert done.stderr.splitlines() == [
        f"inloop: cannot write {target} ({option}): no such file or directory"
    ]
    assert "database" not in done.stderr


def test_db_upgrade_on_an_unreachable_server_says_it_is_the_database(tmp_path: Path) -> None:
    env = {"DATABASE_URL": "postgresql+asyncpg://inloop:secret@127.0.0.1:1/inloop"}

    done = inloop(tmp_path, "db", "upgrade", env=env)

    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith(
        "inloop: cannot use the database postgresql+asyncpg://inloop:***@127.0.0.1:1/inloop: "
    )


# -- the webhook says where it is --------------------------------------------------------


def test_check_config_says_the_webhook_is_off_without_a_secret(tmp_path: Path) -> None:
    done = inloop(tmp_path, "check-config")

    assert done.returncode == 0, done.stderr
    assert "  webhook: off (INTAKE_SECRET is not set)" in done.stdout.splitlines()


def test_check_config_says_where_the_webhook_listens(tmp_path: Path) -> None:
    env = {"INTAKE_SECRET": SECRET, "INTAKE_HOST": "0.0.0.0", "INTAKE_PORT": "9000"}

    done = inloop(tmp_path, "check-config", env=env)

    assert done.returncode == 0, done.stderr
    assert "  webhook: on, http://0.0.0.0:9000/v1/mentions" in done.stdout.splitlines()
    assert SECRET not in done.stdout


def test_check_config_with_slack_does_not_also_say_console(tmp_path: Path) -> None:
    env = {"SLACK_BOT_TOKEN": "xoxb-1-token", "SLACK_APP_TOKEN": "xapp-1-token"}

    done = inloop(tmp_path, "check-config", env=env)

    platforms = [line for line in done.stdout.splitlines() if "platforms:" in line]
    assert platforms == ["  platforms: slack (Socket Mode)"]


def test_the_console_says_where_the_webhook_listens_and_it_does(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SETTINGS)}
    env.update(
        PYTHONIOENCODING="utf-8",
        DATABASE_URL=sqlite_url(tmp_path / "inloop.db"),
        INTAKE_SECRET=SECRET,
        INTAKE_PORT=str(port),
    )
    with subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        cwd=tmp_path,
        env=env,
    ) as process:
        assert process.stdin is not None and process.stdout is not None
        url = f"http://127.0.0.1:{port}/v1/mentions"
        assert process.stdout.readline() == f"Webhook listening on {url}\n"

        answer = _post_mention(url, until=time.monotonic() + TIMEOUT)

        out, err = process.communicate("!inloop team add support\n", timeout=TIMEOUT)
    assert answer == 202
    assert process.returncode == 0, err
    assert "│ Anyone there?" in out


def _post_mention(url: str, *, until: float) -> int:
    """POST one signed mention to `url`, waiting for the webhook to be up; the status."""
    body = json.dumps(
        {"source": "x", "external_id": "1", "author": {"name": "Ann"}, "text": "Anyone there?"}
    ).encode()
    stamp = str(int(time.time()))
    request = urllib.request.Request(
        url,
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-Inloop-Timestamp": stamp,
            "X-Inloop-Signature": sign(SECRET, stamp, body),
        },
    )
    while True:
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return int(response.status)
        except urllib.error.URLError as exc:
            if isinstance(exc, urllib.error.HTTPError) or time.monotonic() > until:
                raise
            time.sleep(0.1)
