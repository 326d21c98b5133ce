"""Secrets never reach the terminal: every log line, traceback and message is masked.

Validation is written never to echo a secret, but a library's exception text, a
traceback's last line or a DEBUG dump of a request may still carry one. So the
values themselves (tokens, passwords, the webhook secret, the database password)
are replaced wherever Inloop prints: in each log record as it is made (its message,
its traceback, its stack), whatever handler or formatter prints it later, and in
the lines the CLI prints itself.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass

MASK = "***"

#: secrets shorter than this are masked only where they stand as credentials
SHORT = 10


@dataclass(frozen=True)
class Masker:
    """Replaces each of `secrets` (longest first, so none is shown in part) with ***.

    A short secret is often an ordinary word too ("short", "database"): masking it
    everywhere mangles the sentences around it, and the gap then gives it away ("is
    too *** to be a secret"). So one shorter than SHORT characters is masked only
    where it stands as a credential: `user:SECRET@host` in a URL, or `password=SECRET`.
    """

    secrets: tuple[str, ...] = ()
    #: the short secrets in their credential positions
    credentials: re.Pattern[str] | None = None

    @classmethod
    def of(cls, values: Iterable[str]) -> Masker:
        unique = {value for value in values if value}
        long = tuple(sorted((v for v in unique if len(v) >= SHORT), key=len, reverse=True))
        short = sorted((v for v in unique if len(v) < SHORT), key=len, reverse=True)
        if not short:
            return cls(long)
        either = "|".join(re.escape(v) for v in short)
        pattern = re.compile(rf"(?<=:)(?:{either})(?=@)|(?<=password=)(?:{either})(?![^&\s])")
        return cls(long, pattern)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        if self.credentials is not None:
            text = self.credentials.sub(MASK, text)
        return text

    def __bool__(self) -> bool:
        return bool(self.secrets) or self.credentials is not None

    def install(self) -> None:
        """Mask every log record from now on, whichever logger makes it.

        The record factory (not a handler's filter) is where this goes: a record is
        made once, and any handler added later (the console's, a library's) then
        prints the masked text too.
        """
        if not self:
            return
        make = logging.getLogRecordFactory()
        logging.setLogRecordFactory(_masking_factory(make, self))
        # `warnings.warn` text goes through logging too, so it is masked as well
        logging.captureWarnings(True)


def _masking_factory(
    make: Callable[..., logging.LogRecord], mask: Masker
) -> Callable[..., logging.LogRecord]:
    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = make(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to the handler to report
            return record
        record.msg, record.args = mask(message), None
        if record.exc_info and record.exc_info[0] is not None:
            # Formatters print `exc_text` when it is set instead of formatting again.
            record.exc_text = mask("".join(traceback.format_exception(*record.exc_info)).rstrip())
        if record.stack_info:
            record.stack_info = mask(record.stack_info)
        return record

    return factory
