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
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass

MASK = "***"


@dataclass(frozen=True)
class Masker:
    """Replaces each of `secrets` (longest first, so none is shown in part) with ***."""

    secrets: tuple[str, ...] = ()

    @classmethod
    def of(cls, values: Iterable[str]) -> Masker:
        unique = {value for value in values if value}
        return cls(tuple(sorted(unique, key=len, reverse=True)))

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def install(self) -> None:
        """Mask every log record from now on, whichever logger makes it.

        The record factory (not a handler's filter) is where this goes: a record is
        made once, and any handler added later (the console's, a library's) then
        prints the masked text too.
        """
        if not self.secrets:
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
