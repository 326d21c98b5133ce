"""Every user-facing sentence, in one place, in English and Italian.

Templates use `str.format` fields. A missing translation is a type error: each
language is a `Texts` instance, and the dataclass has no defaults.
"""

from __future__ import annotations

from bot.messages.en import EN
from bot.messages.it import IT
from bot.messages.texts import Texts

CATALOG: dict[str, Texts] = {"en": EN, "it": IT}


def texts_for(language: str) -> Texts:
    return CATALOG.get(language, EN)


def language_of(chosen: str | None, locale: str, default: str) -> str:
    """A person's language: their `lang` choice, else their platform locale, else the default."""
    if chosen in CATALOG:
        return chosen
    prefix = locale.replace("-", "_").split("_")[0].lower()
    return prefix if prefix in CATALOG else default


__all__ = ["CATALOG", "Texts", "language_of", "texts_for"]
