"""Settings: what Inloop runs with when nothing is set, and the one-line error for a bad value."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import fields
from pathlib import Path

import pytest

from bot.config import (
    DEFAULT_DATABASE_URL,
    KNOWN_SETTINGS,
    SECRET_SETTINGS,
    ConfigError,
    Environment,
    Settings,
    describe_database,
    load_settings,
)
from bot.masking import Masker


def test_nothing_set_gives_a_console_on_a_local_sqlite_file() -> None:
    settings = load_settings({})

    assert settings.database_url == "sqlite+aiosqlite:///inloop.db" == DEFAULT_DATABASE_URL
    assert settings.is_sqlite
    assert settings.admins == ("console:admin",)
    assert settings.language == "en"
    assert settings.default_tz == "UTC"
    assert settings.log_level == "INFO"
    assert settings.outbox_max_attempts == 12


def test_nothing_set_runs_no_webhook() -> None:
    settings = load_settings({})

    assert settings.intake_secret == ""
    assert settings.intake_host == "127.0.0.1"  # only this machine, when it does run
    assert settings.intake_port == 8080
    assert settings.feed_poll_minutes == 10


def test_blank_values_count_as_not_set() -> None:
    blank = dict.fromkeys(
        (
            "DATABASE_URL",
            "INLOOP_ADMINS",
            "INLOOP_LANGUAGE",
            "INLOOP_DEFAULT_TZ",
            "INLOOP_LOG_LEVEL",
            "OUTBOX_MAX_ATTEMPTS",
            "INTAKE_SECRET",
            "INTAKE_HOST",
            "INTAKE_PORT",
            "FEED_POLL_MINUTES",
            "SLACK_BOT_TOKEN",
            "SLACK_APP_TOKEN",
            "SLACK_SIGNING_SECRET",
            "SLACK_HTTP_PORT",
            "SLACK_API_URL",
        ),
        "  ",
    )
    assert load_settings(blank) == load_settings({})


def test_every_setting_is_read() -> None:
    settings = load_settings(
        {
            "DATABASE_URL": "postgresql+asyncpg://inloop:pw@db.example:5432/inloop",
            "INLOOP_ADMINS": " slack:U0123 , matrix:@ann:example.org,console:boss, ",
            "INLOOP_LANGUAGE": "it",
            "INLOOP_DEFAULT_TZ": "Europe/Rome",
            "INLOOP_LOG_LEVEL": "debug",
            "OUTBOX_MAX_ATTEMPTS": " 30 ",
            "INTAKE_SECRET": "a-long-enough-webhook-secret",
            "INTAKE_HOST": "0.0.0.0",
            "INTAKE_PORT": "9000",
            "FEED_POLL_MINUTES": "60",
        }
    )

    assert settings.database_url == "postgresql+asyncpg://inloop:pw@db.example:5432/inloop"
    assert not settings.is_sqlite
    # a Matrix id keeps its own colons; spaces and empty items are ignored
    assert settings.admins == ("slack:U0123", "matrix:@ann:example.org", "console:boss")
    assert settings.language == "it"
    assert settings.default_tz == "Europe/Rome"
    assert settings.log_level == "DEBUG"
    assert settings.outbox_max_attempts == 30
    assert settings.intake_secret == "a-long-enough-webhook-secret"
    assert settings.intake_host == "0.0.0.0"
    assert settings.intake_port == 9000
    assert settings.feed_poll_minutes == 60
    # the webhook secret never shows in a log line that prints the settings
    assert "a-long-enough-webhook-secret" not in repr(settings)


def test_unrelated_variables_are_ignored() -> None:
    assert load_settings({"PATH": "/bin", "INLOOP_UNKNOWN": "x"}) == load_settings({})


@pytest.mark.parametrize("attempts", ["1", "100"])
def test_outbox_attempts_accepts_its_bounds(attempts: str) -> None:
    assert load_settings({"OUTBOX_MAX_ATTEMPTS": attempts}).outbox_max_attempts == int(attempts)


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("DATABASE_URL", "mysql://u@h/db", "must start with sqlite+aiosqlite:// or postgresql"),
        ("DATABASE_URL", "postgresql://u@h/db", "postgresql+asyncpg://"),
        ("DATABASE_URL", "sqlite:///inloop.db", "sqlite+aiosqlite://"),
        ("DATABASE_URL", "inloop.db", "must start with"),
        ("INLOOP_ADMINS", "ann", "'ann' is not platform-qualified, write e.g. slack:U0123"),
        ("INLOOP_ADMINS", "slack:U1, bob", "'bob' is not platform-qualified"),
        ("INLOOP_ADMINS", "slack:", "'slack:' is not platform-qualified"),
        ("INLOOP_ADMINS", "teams:U1", "'teams:U1': unknown platform 'teams'"),
        ("INLOOP_LANGUAGE", "fr", "'fr' is not one of en, it"),
        ("INLOOP_DEFAULT_TZ", "Mars/Base", "'Mars/Base' is not an IANA time zone"),
        ("INLOOP_DEFAULT_TZ", "Europe", "'Europe' is not an IANA time zone"),
        ("INLOOP_DEFAULT_TZ", "../../etc/passwd", "is not an IANA time zone"),
        ("INLOOP_DEFAULT_TZ", "+02:00", "is not an IANA time zone"),
        ("INLOOP_LOG_LEVEL", "loud", "'LOUD' is not one of DEBUG, INFO, WARNING, ERROR"),
        ("OUTBOX_MAX_ATTEMPTS", "many", "'many' is not a whole number"),
        ("OUTBOX_MAX_ATTEMPTS", "2.5", "'2.5' is not a whole number"),
        ("OUTBOX_MAX_ATTEMPTS", "0", "0 is not between 1 and 100"),
        ("OUTBOX_MAX_ATTEMPTS", "101", "101 is not between 1 and 100"),
        ("OUTBOX_MAX_ATTEMPTS", "-3", "-3 is not between 1 and 100"),
        ("INTAKE_SECRET", "hunter2", "too short to be a secret: use at least 16 characters"),
        ("INTAKE_PORT", "http", "'http' is not a whole number"),
        ("INTAKE_PORT", "65536", "65536 is not between 0 and 65535"),
        ("FEED_POLL_MINUTES", "0", "0 is not between 1 and 1440"),
        ("FEED_POLL_MINUTES", "1441", "1441 is not between 1 and 1440"),
    ],
)
def test_a_bad_value_names_its_variable_and_the_problem(
    variable: str, value: str, says: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({variable: value})

    assert raised.value.variable == variable
    assert says in raised.value.problem
    assert str(raised.value) == f"{variable}: {raised.value.problem}"
    assert "\n" not in str(raised.value)


def test_a_too_short_webhook_secret_is_not_echoed() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({"INTAKE_SECRET": "hunter2"})

    assert "hunter2" not in str(raised.value)


@pytest.mark.parametrize(
    "url",
    [
        "mysql://inloop:secret@db.example/inloop",
        "postgresql://inloop:secret@db.example:5432/inloop",
        "postgres://inloop:s@cret-secret@db.example/inloop",
        "postgresql://db.example/inloop?user=inloop&password=secret",
        # no scheme at all
        "inloop:secret@db.example",
        # an unencoded @ in the password: SQLAlchemy would fail later, with it in its message
        "postgresql+asyncpg://inloop:p@ss:secret@db.example:5432/inloop",
        "postgresql+asyncpg://inloop:secret@db.example:notaport/inloop",
        "postgresql+asyncpg://inloop:secret@db.example:70000/inloop",
        # an unencoded @ or / that still parses: the rest would read as host or database
        "postgresql+asyncpg://inloop:top-secret@secret@db.example/inloop",
        "postgresql+asyncpg://inloop:top/secret@db.example/inloop",
    ],
)
def test_a_rejected_database_url_never_shows_its_password(url: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({"DATABASE_URL": url})

    assert raised.value.variable == "DATABASE_URL"
    assert "secret" not in str(raised.value)
    assert "db.example" in str(raised.value)  # still enough to see which URL is wrong


def test_a_database_password_written_as_sqlalchemy_wants_it_is_accepted() -> None:
    url = "postgresql+asyncpg://inloop:p%40ss%3Aword@db.example:5432/inloop"

    assert load_settings({"DATABASE_URL": url}).database_url == url


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("sqlite+aiosqlite:////var/lib/inloop/inloop.db", "SQLite, file /var/lib/inloop/inloop.db"),
        ("sqlite+aiosqlite:///:memory:", "SQLite, in memory (nothing is kept)"),
        (
            "postgresql+asyncpg://inloop:secret@db.example:5433/support?password=secret",
            "PostgreSQL, database support on db.example:5433 as inloop",
        ),
        (
            "postgresql+asyncpg:///inloop?host=/run/postgresql",
            "PostgreSQL, database inloop on /run/postgresql",
        ),
    ],
)
def test_the_database_is_described_without_its_password(url: str, says: str) -> None:
    assert describe_database(url) == says


def test_a_relative_sqlite_file_is_named_where_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    assert describe_database(DEFAULT_DATABASE_URL) == f"SQLite, file {tmp_path / 'inloop.db'}"


# -- what is masked, what is unknown -----------------------------------------------------


def test_the_secret_settings_are_the_settings_kept_out_of_repr() -> None:
    hidden = {f.name.upper() for f in fields(Settings) if not f.repr}

    assert hidden == set(SECRET_SETTINGS)


def test_every_secret_value_is_to_be_masked_even_an_invalid_one() -> None:
    env = Environment(
        {
            "INTAKE_SECRET": "short",  # refused by validation: still never printed
            "SLACK_BOT_TOKEN": " xoxb-padded ",
            "MATRIX_PASSWORD": "matrix-pw",
            "DATABASE_URL": "postgresql+asyncpg://inloop:p%40ss@db/inloop?password=other",
            "INLOOP_LANGUAGE": "it",
        }
    )

    assert set(env.secrets()) == {
        "short",
        " xoxb-padded ",
        "xoxb-padded",
        "matrix-pw",
        "p%40ss",
        "p@ss",
        "other",
    }


def test_a_misspelt_setting_is_named_with_the_closest_one() -> None:
    env = Environment(
        {"INLOOP_ADMIN": "console:ann", "SLACK_TOKEN": "x", "INLOOP_LANGAUGE": "it"},
        from_file=frozenset({"INLOOP_ADMIN", "SLACK_TOKEN"}),
        file_name="prod.env",
    )

    assert env.unknown_settings() == [
        "INLOOP_ADMIN (in prod.env) is not an Inloop setting and is ignored: "
        "did you mean INLOOP_ADMINS?",
        "INLOOP_LANGAUGE (in the environment) is not an Inloop setting and is ignored: "
        "did you mean INLOOP_LANGUAGE?",
        "SLACK_TOKEN (in prod.env) is not an Inloop setting and is ignored: "
        "did you mean SLACK_BOT_TOKEN?",
    ]


def test_other_programs_settings_are_not_warned_about() -> None:
    env = Environment(
        {"PATH": "/bin", "POSTGRES_PASSWORD": "x", "INLOOP_ADMINS": "console:a", "HOME": "/"}
    )

    assert env.unknown_settings() == []


def test_an_unknown_setting_like_no_other_says_so() -> None:
    env = Environment({"MATRIX_XYZZY": "1"})

    assert env.unknown_settings() == [
        "MATRIX_XYZZY (in the environment) is not an Inloop setting and is ignored: "
        "no Inloop setting is named like it"
    ]


# -- config.example.env is true to the code ----------------------------------------------

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.env"
_SETTING_LINE = re.compile(r"^#?([A-Z][A-Z0-9_]*)=(.*)$")
_EXAMPLE_LINE = re.compile(r"^# Example: ([A-Z][A-Z0-9_]*)=(.*)$")


class _Asked(Mapping[str, str]):
    """An empty environment that notes every variable `load_settings` looks up."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.names.add(key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _example_blocks() -> dict[str, tuple[str, str, str]]:
    """name → (the comment above it, its line's value, whether the line is commented out)."""
    blocks: dict[str, tuple[str, str, str]] = {}
    comment: list[str] = []
    for line in EXAMPLE.read_text().splitlines():
        setting = _SETTING_LINE.match(line)
        if setting:
            name, value = setting.groups()
            assert name not in blocks, f"{name} appears twice"
            blocks[name] = ("\n".join(comment), value, line[:1])
            comment = []
        elif line.startswith("#"):
            comment.append(line)
        else:
            comment = []
    return blocks


def test_the_known_settings_are_every_variable_the_code_reads() -> None:
    asked = _Asked()
    load_settings(asked)

    assert asked.names == KNOWN_SETTINGS


def test_the_example_file_has_every_variable_the_code_reads() -> None:
    asked = _Asked()
    load_settings(asked)

    assert set(_example_blocks()) == asked.names


def test_each_example_variable_says_what_it_does_its_default_and_an_example() -> None:
    for name, (comment, _, _) in _example_blocks().items():
        assert "# Default:" in comment, name
        assert f"# Example: {name}=" in comment, name
        # a sentence about what it does, before the default and the example
        assert len(comment.split("# Default:")[0]) > 20, name


def test_the_commented_out_values_are_the_defaults() -> None:
    defaults = load_settings({})
    for name, (_, value, commented) in _example_blocks().items():
        assert commented == "#", f"{name} is set in the example: its default is fine"
        assert load_settings({name: value}) == defaults, name


def test_the_examples_together_are_a_valid_configuration() -> None:
    examples = {}
    for line in EXAMPLE.read_text().splitlines():
        example = _EXAMPLE_LINE.match(line)
        if example:
            examples[example.group(1)] = example.group(2)

    settings = load_settings(examples)

    assert set(examples) == set(_example_blocks())
    assert settings != load_settings({})
    assert settings.language == "it"
    assert not settings.is_sqlite


def test_each_section_of_the_example_starts_after_a_blank_line() -> None:
    lines = EXAMPLE.read_text().splitlines()
    for number, line in enumerate(lines):
        if line.startswith("# -- ") and number > 0:
            assert lines[number - 1] == "", f"no blank line before {line!r}"


# -- the README is true to the code --------------------------------------------------------

README = EXAMPLE.parent / "README.md"


def test_the_readme_tables_have_every_variable_the_code_reads() -> None:
    asked = _Asked()
    load_settings(asked)
    # the first column of a table row: `NAME` or `NAME` / `OTHER`
    rows = [
        line.split("|")[1] for line in README.read_text().splitlines() if line.startswith("| `")
    ]
    documented = {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row)}

    assert asked.names - documented == set()


# -- Slack ----------------------------------------------------------------------------


def test_nothing_set_runs_no_slack() -> None:
    settings = load_settings({})

    assert settings.slack_bot_token == ""
    assert not settings.slack_socket_mode
    assert settings.slack_http_port == 3000
    assert settings.slack_api_url == "https://slack.com/api/"


def test_slack_settings_are_read_and_tokens_never_printed() -> None:
    settings = load_settings(
        {
            "SLACK_BOT_TOKEN": " xoxb-1-secret-bot ",
            "SLACK_APP_TOKEN": "xapp-1-secret-app",
            "SLACK_SIGNING_SECRET": "secret-signing",
            "SLACK_HTTP_PORT": "3100",
            "SLACK_API_URL": "http://127.0.0.1:9000/api",
        }
    )

    assert settings.slack_bot_token == "xoxb-1-secret-bot"
    assert settings.slack_socket_mode
    assert settings.slack_signing_secret == "secret-signing"
    assert settings.slack_http_port == 3100
    assert settings.slack_api_url == "http://127.0.0.1:9000/api/"  # a base URL ends with /
    assert "secret" not in repr(settings)


@pytest.mark.parametrize(
    ("env", "variable", "says"),
    [
        ({"SLACK_BOT_TOKEN": "xapp-1-wrong"}, "SLACK_BOT_TOKEN", "must start with xoxb-"),
        (
            {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xoxb-2"},
            "SLACK_APP_TOKEN",
            "must start with xapp-",
        ),
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, "SLACK_SIGNING_SECRET", "needed for Slack's HTTP mode"),
        ({"SLACK_HTTP_PORT": "70000"}, "SLACK_HTTP_PORT", "70000 is not between 0 and 65535"),
        ({"SLACK_API_URL": "slack.com/api"}, "SLACK_API_URL", "is not an http(s) URL"),
    ],
)
def test_a_bad_slack_setting_names_its_variable(
    env: dict[str, str], variable: str, says: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(env)

    assert raised.value.variable == variable
    assert says in raised.value.problem
    assert "xapp-1-wrong" not in str(raised.value)  # a token is never echoed


def test_a_short_secret_that_is_also_a_word_leaves_the_sentence_alone() -> None:
    """Masking 'short' everywhere printed 'is too *** to be a secret', which gives it away."""
    mask = Masker.of(["short", "database"])

    assert mask("INTAKE_SECRET: is too short to be a secret") == (
        "INTAKE_SECRET: is too short to be a secret"
    )
    said = "cannot use the database postgresql+asyncpg://bob:database@db:1/x?password=short"
    assert mask(said) == "cannot use the database postgresql+asyncpg://bob:***@db:1/x?password=***"
    assert Masker.of(["a-long-secret-value"])("token a-long-secret-value!") == "token ***!"
