"""The outbox's estimate of an account's bucket (Synapse's `rc_message`): a reserve for
private answers, the limit learnt from a 429, a lifted limit learnt from messages that
got through. Times are the event loop's, given explicitly."""

from __future__ import annotations

import pytest

from bot.account_limit import AccountBucket, AccountLimit, Known, Urgency

SYNAPSE_DEFAULT = AccountLimit(burst=10, per_second=0.2)


def _send(bucket: AccountBucket, at: float, urgency: Urgency) -> None:
    assert bucket.wait(at, urgency) == 0.0, (at, urgency)
    bucket.take(at, urgency)
    bucket.sent(at)


def test_cards_leave_half_of_the_default_bucket_to_private_answers() -> None:
    bucket = AccountBucket(SYNAPSE_DEFAULT)
    for i in range(4):
        _send(bucket, i * 0.01, Urgency.NEW_CARD)
    # Four new cards went: the next waits for the bucket to empty by one message (five
    # seconds at 0.2 a second), while one more change to a card (or a burst card) goes.
    assert bucket.wait(0.1, Urgency.NEW_CARD) == pytest.approx(4.9, abs=0.05)
    _send(bucket, 0.1, Urgency.CHANGE)
    assert bucket.wait(0.1, Urgency.CHANGE) == pytest.approx(4.9, abs=0.05)
    # Five private answers go at once, nothing of them waits.
    for i in range(5):
        _send(bucket, 0.2 + i * 0.01, Urgency.ANSWER)
    assert bucket.known is Known.ASSUMED


def test_a_429_teaches_the_homeservers_rate_and_burst() -> None:
    # A homeserver allowing 3 at once, then 2 a second: the 4th, 0.1 s after the 3rd,
    # is refused with "retry after 0.4 s" (one message's worth, 0.5 s, less 0.1 s).
    bucket = AccountBucket(SYNAPSE_DEFAULT)
    for i in range(3):
        _send(bucket, i * 0.01, Urgency.ANSWER)
    bucket.refused(0.12, 0.4)
    assert bucket.known is Known.LIMITED
    assert bucket.per_second == pytest.approx(2.0, rel=0.1)
    assert bucket.burst == 3
    # Now a private answer waits for room too, as long as the homeserver said.
    assert bucket.wait(0.12, Urgency.ANSWER) == pytest.approx(0.4, abs=0.05)
    # and cards for room above the reserve (one of three here)
    assert bucket.wait(0.12, Urgency.NEW_CARD) > bucket.wait(0.12, Urgency.ANSWER)


def test_a_slower_limit_than_the_default_is_learnt_from_its_retry_after() -> None:
    bucket = AccountBucket(SYNAPSE_DEFAULT)
    for i in range(10):
        _send(bucket, i * 0.01, Urgency.ANSWER)
    bucket.refused(0.2, 9.9)  # one message every 10 s
    assert bucket.per_second == pytest.approx(0.1, rel=0.05)
    assert bucket.wait(0.2, Urgency.ANSWER) == pytest.approx(9.9, rel=0.05)


def test_messages_beyond_the_default_that_get_through_show_the_limit_lifted() -> None:
    bucket = AccountBucket(SYNAPSE_DEFAULT)
    for i in range(12):
        _send(bucket, i * 0.01, Urgency.ANSWER)
    assert bucket.known is Known.LIFTED
    assert bucket.wait(0.2, Urgency.NEW_CARD) == 0.0
    # until a 429 says otherwise
    bucket.refused(1.0, 4.0)
    assert bucket.holds
    assert bucket.wait(1.0, Urgency.ANSWER) == pytest.approx(4.0, abs=0.05)


def test_waiting_cards_test_an_assumed_limit_only_when_the_reserve_is_spent_or_unused() -> None:
    bucket = AccountBucket(SYNAPSE_DEFAULT)
    for i in range(5):
        _send(bucket, i * 0.01, Urgency.NEW_CARD if i < 4 else Urgency.CHANGE)
    assert bucket.wait(0.1, Urgency.NEW_CARD) > 0  # the next card waits from now
    _send(bucket, 1.0, Urgency.ANSWER)
    # answers keep coming: the cards keep out of the reserve
    assert bucket.wait(4.0, Urgency.NEW_CARD) > 0
    # nobody used the reserve for five seconds: cards test whether the limit holds
    assert bucket.wait(6.0, Urgency.NEW_CARD) == 0.0

    spent = AccountBucket(SYNAPSE_DEFAULT)
    for i in range(5):
        _send(spent, i * 0.01, Urgency.NEW_CARD if i < 4 else Urgency.CHANGE)
    for i in range(5):
        _send(spent, 0.1 + i * 0.01, Urgency.ANSWER)
    # the answers filled the bucket: a card beyond it costs at most a 429
    assert spent.wait(0.2, Urgency.NEW_CARD) == 0.0


def test_a_429_after_a_default_bucket_filled_keeps_the_default_rate() -> None:
    # Ten got through, the eleventh is refused with a short retry_after (the bucket had
    # just emptied by most of a message): that is still the default, one every 5 s, not
    # one every 0.7 s (which would meet a 429 at nearly every message).
    bucket = AccountBucket(SYNAPSE_DEFAULT)
    for i in range(10):
        _send(bucket, i * 0.01, Urgency.ANSWER)
    bucket.refused(0.5, 0.3)
    assert bucket.per_second == pytest.approx(0.2)
    assert bucket.burst == 10
    assert bucket.wait(0.5, Urgency.ANSWER) == pytest.approx(0.3, abs=0.01)


def test_a_homeserver_burst_smaller_than_the_reserve_still_lets_cards_through() -> None:
    # Two at once, then one a second: the reserve (one) and a card's edit with its
    # thread line (two) do not fit above it, yet cards go once the bucket is empty.
    bucket = AccountBucket(SYNAPSE_DEFAULT)
    for i in range(2):
        _send(bucket, i * 0.01, Urgency.ANSWER)
    bucket.refused(0.02, 0.99)
    assert bucket.burst == 2
    assert bucket.wait(10.0, Urgency.NEW_CARD) == 0.0
    assert bucket.wait(10.0, Urgency.CHANGE, messages=2) == 0.0
