"""What a platform limited per account lets the bot send, as the outbox models it.

Synapse limits each user's messages in every room and private room together
(`rc_message`): a leaky bucket of `burst` messages that empties at `per_second`
(synapse/api/ratelimiting.py: a message is refused while the bucket holds `burst`).
The outbox keeps its own estimate of that bucket, so that it avoids a 429 rather
than learns from one, and keeps a reserve of it (RESERVE_SHARE) for what cannot wait:

- a private answer (and a channel's first burst card) may use the whole bucket;
- a card change goes only while more than the reserve would stay free, a new card
  while one more would (for the burst card, or a claim's change), so a backlog of
  cards never spends what the next "is yours" needs.

What the homeserver really allows is not known until it shows it. The bot starts
from the platform's documented default (`AccountLimit`: Synapse's is 10, 0.2 a
second), which it only *assumes*:

- a 429 shows the limit: the estimate becomes the homeserver's own (`refused`: the
  bucket full until its `retry_after`; the rate and the burst worked out from it and
  from when the bot's last messages got through), and every message, private answers
  too, waits for room from then on (`LIMITED`);
- a message that got through although the estimate said the bucket overflowed shows
  that the limit is higher, or lifted (`override_ratelimit`): nothing is held back
  any more (`LIFTED`), until a 429;
- while assumed, private answers are never held back (a guess must not delay them),
  and cards test the guess (they stop waiting for the reserve until a 429 or enough
  getting through shows which it is) once the estimated bucket is full anyway (the
  answers spent the reserve: the test costs one 429 if the default holds), or once
  cards have met the reserve and nothing used it for PROBE_QUIET seconds (then it costs
  the reserve too, when nobody seemed to need it).
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

#: the share of the account's bucket that only private answers (and a channel's first
#: burst card) may use: 5 of Synapse's default 10. A claim during a burst costs its
#: "is yours" from the reserve, and five answers at once, plus one every five seconds,
#: is what a team asks in the first seconds of a burst; the other half (the burst
#: card's place, and four cards or two claimed cards' edits with their thread lines)
#: still shows the burst as it begins.
RESERVE_SHARE = 0.5
#: accepted sends remembered, to work out the homeserver's limit at a 429
REMEMBERED = 64
#: seconds without a message from the reserve after which, while the limit is only
#: assumed, waiting new cards test it (see the module docstring)
PROBE_QUIET = 5.0
#: messages beyond the estimated bucket that must get through to show the limit lifted
#: (the estimate counts a message when it leaves: the homeserver's count is lower by a
#: round trip's worth of its rate, far less than one)
LIFT_MARGIN = 1.0


class Urgency(enum.IntEnum):
    """How much of the account's bucket a message may use."""

    #: a private answer, a channel's first burst card: the whole bucket
    ANSWER = 0
    #: a change to a card (claim, release, resolve, a burst card's update): what is
    #: left above the reserve
    CHANGE = 1
    #: a new conversation's card: what is left above the reserve
    NEW_CARD = 2


class Known(enum.Enum):
    ASSUMED = "assumed"
    LIMITED = "limited"
    LIFTED = "lifted"


@dataclass(frozen=True)
class AccountLimit:
    """A platform's documented default limit per account: `burst` messages at once,
    then `per_second`."""

    burst: int
    per_second: float


class AccountBucket:
    """The outbox's estimate of one account's bucket (loop times, in seconds)."""

    def __init__(self, default: AccountLimit):
        self._default = default
        self.burst = float(default.burst)
        self.per_second = default.per_second
        self.known = Known.ASSUMED
        #: loop times of the last sends that got through
        self._accepted: deque[float] = deque(maxlen=REMEMBERED)
        #: messages in the bucket at `_at`
        self._level = 0.0
        self._at = 0.0
        #: loop time of the last message that used the reserve's urgency (ANSWER)
        self._answered_at = float("-inf")
        #: loop time a card or a change first had to wait for the reserve (None: not
        #: yet): a test of an assumed limit comes after (`_probing`)
        self._held_since: float | None = None

    def level(self, loop_now: float) -> float:
        """Messages in the bucket now (it empties at `per_second`)."""
        return max(0.0, self._level - (loop_now - self._at) * self.per_second)

    @property
    def reserve(self) -> float:
        """Messages of the bucket kept for private answers."""
        return float(int(self.burst * RESERVE_SHARE))

    @property
    def holds(self) -> bool:
        """Whether messages may have to wait (the limit is not known to be lifted)."""
        return self.known is not Known.LIFTED

    def wait(self, loop_now: float, urgency: Urgency, messages: int = 1) -> float:
        """Seconds before `messages` of this urgency (one unit: an edit and its thread
        line are two) may go."""
        if self.known is Known.LIFTED:
            return 0.0
        if urgency is Urgency.ANSWER:
            if self.known is Known.ASSUMED:
                return 0.0
            ceiling = self.burst - messages  # room for them
        else:
            if self._probing(loop_now):
                return 0.0
            ceiling = self.burst - self.reserve - messages
            if urgency is Urgency.NEW_CARD:
                # one message above the reserve stays for what shows the burst first:
                # its burst card, or a claimed card's change
                ceiling -= 1.0
        # An empty bucket lets anything through (a homeserver's burst smaller than a
        # reserve and a unit together must not hold cards for ever).
        ceiling = max(0.0, ceiling)
        wait = max(0.0, (self.level(loop_now) - ceiling) / self.per_second)
        if wait > 0 and urgency is not Urgency.ANSWER and self._held_since is None:
            self._held_since = loop_now
        return wait

    def room_for_cards(self, loop_now: float) -> float:
        """How many new cards may go now (above the reserve, and the one message kept
        for a burst card or a change)."""
        return max(0.0, self.burst - self.reserve - 1.0 - self.level(loop_now))

    def take(self, loop_now: float, urgency: Urgency, messages: int = 1) -> None:
        """Messages chosen to go now: counted at once, so that the next lane chosen in
        the same moment sees them (lanes waiting for the same room take turns)."""
        self._level = self.level(loop_now) + messages
        self._at = loop_now
        if urgency is Urgency.ANSWER:
            self._answered_at = loop_now

    def sent(self, loop_now: float) -> None:
        """A message got through: if the estimate says it overflowed the bucket, the
        limit is higher than assumed (or lifted)."""
        self._accepted.append(loop_now)
        if self.known is not Known.LIMITED and self.level(loop_now) > self.burst + LIFT_MARGIN:
            self.known = Known.LIFTED

    def refused(self, loop_now: float, retry_after: float) -> None:
        """A 429: the bucket is full, with room for one more in `retry_after` seconds.

        Synapse's `retry_after` is (level - burst + 1) / rate: right after the bot's last
        accepted message filled the bucket, it is a message's worth less the time since
        that message, so the seconds per message are at least `retry_after` plus that
        time. The first 429 (or the first since a lift) is weighed against the default:
        if the bot's accepted messages had filled a default bucket, the default it is
        (never faster than that bound); if far fewer were let through, the homeserver
        has a smaller bucket of its own: its rate is that bound, its burst the fullest
        the accepted messages made the bucket at that rate. Later 429s can only show
        the messages' worth longer."""
        since = loop_now - self._accepted[-1] if self._accepted else 0.0
        bound = retry_after + since
        default = self._default
        if self.known is Known.LIMITED:
            gap = max(bound, 1.0 / self.per_second)
        elif self._peak(default.per_second) >= default.burst - 1.0:
            gap = max(bound, 1.0 / default.per_second)
            self.burst = float(default.burst)
        else:
            gap = bound
            self.burst = float(max(1, round(self._peak(1.0 / max(gap, 1e-3)))))
        self.per_second = 1.0 / max(gap, 1e-3)
        self.known = Known.LIMITED
        self._level = self.burst - 1.0 + retry_after * self.per_second
        self._at = loop_now

    def _peak(self, per_second: float) -> float:
        """The fullest the accepted messages made a bucket emptying at `per_second`."""
        peak = level = 0.0
        for before, at in zip((None, *self._accepted), self._accepted, strict=False):
            drained = 0.0 if before is None else (at - before) * per_second
            level = max(0.0, level - drained) + 1.0
            peak = max(peak, level)
        return peak

    def _probing(self, loop_now: float) -> bool:
        """Whether waiting cards test an assumed limit now (module docstring)."""
        if self.known is not Known.ASSUMED:
            return False
        if self.level(loop_now) > self.burst - 1.0:
            return True  # the answers spent the reserve: a card costs nothing more
        if self._held_since is None:
            return False
        return loop_now - max(self._answered_at, self._held_since) >= PROBE_QUIET
