"""The webhook's rule, on generated requests: whatever bytes a client sends, the answer is a
2xx or a 4xx with a reason, and a 4xx leaves the database exactly as it was.

Each generated request goes through the real HTTP server (the App's webhook on a free
port), on SQLite and on PostgreSQL. The CI run is short and the same every time
(profile `inloop-ci`); `python -m bench.webhook_fuzz` runs the same properties for as
many new examples as you like (bench/README.md).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlmodel import SQLModel
from test_webhook import SECRET, Intake, mention, raw_http

import storage.models  # noqa: F401 (the tables, for the snapshot)
from bot.intake.webhook import WEBHOOK_PATH, sign
from harness import Chat

settings.register_profile(
    "inloop-ci",
    max_examples=25,
    derandomize=True,  # CI sees the same cases each run: a failure is never luck
    database=None,
    deadline=None,
    # One server serves every example of a test, as it would serve many clients.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Hypothesis starts on "ci" where CI is set (as in .ci/run), else on "default": either
# way these tests run on this profile; bench.webhook_fuzz loads an "inloop-…" one.
if not settings.get_current_profile_name().startswith("inloop"):
    settings.load_profile("inloop-ci")


@pytest.fixture
async def intake(database_url: str) -> AsyncIterator[Intake]:
    chat = await Chat(database_url, INTAKE_SECRET=SECRET, INTAKE_PORT="0").start()
    await chat.say("boss", "team add support")
    async with aiohttp.ClientSession() as http:
        yield Intake(chat, http)
    await chat.stop()


#: rows Inloop changes on its own while it runs, whatever clients send: on PostgreSQL the
#: duties' leases and the instance's own liveness are renewed every 1.5 s (bot/duties.py)
OWN_HEARTBEAT = frozenset({"duty_lease", "instance_lease"})


async def snapshot(intake: Intake) -> dict[str, list[str]]:
    """Every row of every table a request could write."""
    await intake.chat.app.settle()
    async with intake.chat.app.db.read() as session:
        return {
            table.name: sorted(map(repr, (await session.execute(select(table))).all()))
            for table in SQLModel.metadata.sorted_tables
            if table.name not in OWN_HEARTBEAT
        }


# -- what a client might send ----------------------------------------------------------

#: strings as hostile as JSON can carry: lone surrogates, NUL, controls, other scripts
hostile_text = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=30),  # surrogates included
    st.text(st.sampled_from("\x00\ud800\udfff\u202e\u2028 \t\n٣²℀[]:/@#<>"), max_size=8),
    st.sampled_from(["", " ", "http://[", "http://ex℀.com/", "https://x.example/ok"]),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    hostile_text,
)
any_json = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(hostile_text, inner, max_size=3)
    ),
    max_leaves=8,
)
timestamps = st.one_of(
    st.datetimes().map(lambda d: d.isoformat()),
    st.sampled_from(
        ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-11-16T08:02:11Z"]
    ),
)

#: for each field, a good value, a value of its kind that may be bad, or anything at all
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "source": hostile_text,
    "external_id": hostile_text,
    "conversation_key": hostile_text,
    "author": st.one_of(
        st.fixed_dictionaries({"name": hostile_text}, optional={"handle": hostile_text}),
        any_json,
    ),
    "text": hostile_text,
    "url": hostile_text,
    "created_at": st.one_of(timestamps, hostile_text),
    "lang": hostile_text,
    "tags": st.one_of(st.lists(hostile_text, max_size=4), any_json),
}


@st.composite
def mentions(draw: st.DrawFn) -> dict[str, Any]:
    body = mention(draw(st.integers(1, 10**6)))
    for name in draw(st.sets(st.sampled_from(sorted(FIELDS)), max_size=3)):
        body[name] = draw(st.one_of(FIELDS[name], any_json))
    for name in draw(st.sets(st.sampled_from(sorted(FIELDS)), max_size=1)):
        del body[name]
    if draw(st.booleans()):
        body[draw(hostile_text)] = draw(any_json)  # a member no one asked for
    return body


def _encode(value: Any, ascii_only: bool) -> bytes:
    # ensure_ascii=False leaves a lone surrogate raw: its "UTF-8" is then not UTF-8.
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


mention_bodies = st.one_of(
    st.builds(_encode, mentions(), st.booleans()),
    st.builds(_encode, st.lists(mentions(), max_size=3), st.booleans()),
)
other_bodies = st.one_of(
    st.builds(_encode, any_json, st.booleans()),
    st.binary(max_size=200),
    st.integers(0, 3000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 6000).map(lambda n: b'{"n": ' + b"9" * n + b"}"),
)
bodies = st.one_of(mention_bodies, other_bodies)


def no_error_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A client's data never makes Inloop fail later either (a card, a delivery)."""
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    caplog.clear()
    assert errors == []


@given(body=mention_bodies)
async def test_any_value_in_any_field_is_answered_2xx_or_4xx_and_a_4xx_stores_nothing(
    intake: Intake, caplog: pytest.LogCaptureFixture, body: bytes
) -> None:
    await _signed_body_keeps_the_rule(intake, caplog, body)


@given(body=other_bodies)
async def test_any_signed_body_is_answered_2xx_or_4xx_and_a_4xx_stores_nothing(
    intake: Intake, caplog: pytest.LogCaptureFixture, body: bytes
) -> None:
    await _signed_body_keeps_the_rule(intake, caplog, body)


async def _signed_body_keeps_the_rule(
    intake: Intake, caplog: pytest.LogCaptureFixture, body: bytes
) -> None:
    before = await snapshot(intake)

    status, answer = await intake.post(raw=body)
    event(f"{status} {answer.get('field', '')}")  # the statistics show what was covered

    assert status < 300 or 400 <= status < 500, (status, answer)
    if status >= 400:
        assert isinstance(answer.get("error"), str) and answer["error"]
        assert await snapshot(intake) == before
    no_error_logged(caplog)


# -- headers and request lines, byte for byte ------------------------------------------

#: a header value: any bytes but the line ends (those would end the header, not bend it)
header_bytes = st.one_of(
    st.binary(max_size=80).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
    st.text(st.characters(codec="utf-8"), max_size=20).map(
        lambda t: t.encode().replace(b"\r", b"").replace(b"\n", b"")
    ),
    st.integers(0, 10**500).map(lambda n: str(n).encode()),
    st.sampled_from(["²", "٣٣", "sha256=é", "sha256=" + "0" * 64, "-1", " 1"]).map(str.encode),
)
header_names = st.sampled_from(
    [
        b"X-Inloop-Timestamp",
        b"X-Inloop-Signature",
        b"Content-Type",
        b"Content-Encoding",
        b"Transfer-Encoding",
        b"Expect",
        b"X-Other",
        b"Bad Name",
        "Tïmestamp".encode(),
    ]
)
methods = st.sampled_from([b"POST", b"GET", b"PUT", b"HEAD", b"P\xc3\xb6ST", b""])
paths = st.one_of(
    st.sampled_from([WEBHOOK_PATH.encode(), b"/healthz", b"/", b"*", b"//v1/mentions"]),
    st.binary(max_size=20).map(lambda b: b"/" + bytes(c for c in b if c > 32)),
)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    body = draw(st.one_of(bodies, st.just(json.dumps(mention()).encode())))
    now = str(int(time.time()))
    headers = [
        (b"X-Inloop-Timestamp", now.encode()),
        (b"X-Inloop-Signature", draw(st.sampled_from([b"sha256=" + b"0" * 64, b""]))),
        (b"Content-Type", b"application/json"),
    ]
    for index in draw(st.sets(st.integers(0, 2))):  # bend the usual headers
        headers[index] = (headers[index][0], draw(header_bytes))
    headers += draw(st.lists(st.tuples(header_names, header_bytes), max_size=3))
    if draw(st.booleans()):  # signed, so that only the bent parts are wrong
        stamp = dict(headers).get(b"X-Inloop-Timestamp", now.encode())
        good = sign(SECRET, stamp.decode("utf-8", "replace"), body).encode()
        headers = [(n, good if n == b"X-Inloop-Signature" else v) for n, v in headers]
    head = draw(methods) + b" " + draw(paths) + b" HTTP/1.1\r\nHost: inloop\r\n"
    head += b"".join(n + b": " + v + b"\r\n" for n, v in headers)
    length = b"Content-Length: " + str(len(body)).encode() + b"\r\n"
    return head + length + b"Connection: close\r\n\r\n" + body


@given(request=requests())
async def test_any_request_line_and_headers_are_answered_2xx_or_4xx(
    intake: Intake, caplog: pytest.LogCaptureFixture, request: bytes
) -> None:
    before = await snapshot(intake)

    status, answer = await raw_http(intake.chat.app.webhook.port, request)  # type: ignore[union-attr]
    await intake.chat.app.settle()
    event(str(status))

    assert status < 300 or 400 <= status < 500, (status, answer[:300])
    if status >= 400:
        assert answer.strip() or request.startswith(b"HEAD "), "a 4xx says why (HEAD: no body)"
        assert await snapshot(intake) == before
    no_error_logged(caplog)
