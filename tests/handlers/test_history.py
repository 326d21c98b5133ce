"""`show N`: a conversation's history reads as sentences, whatever happened to it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bot.messages import CATALOG
from harness import Chat

HANDLERS = Path(__file__).parents[2] / "handlers"


def _history(shown: str) -> list[str]:
    lines = shown.split("History:")[1].strip().splitlines()
    return [line.split("] ", 1)[1] for line in lines]


async def test_asking_for_advice_routing_and_reassigning_read_naturally(chat: Chat) -> None:
    await chat.mention("Giulia", "Il rimborso non arriva")  # no team yet: it waits
    await chat.say("boss", "team add support")
    await chat.say("boss", "role console:marta consultant")
    await chat.say("ann", "claim 1")
    await chat.say("ann", "ask 1 Cosa rispondo? console:marta")
    await chat.say("boss", "reassign 1 console:bob")

    assert _history(await chat.say("ann", "show 1")) == [
        "Inloop created the conversation",
        "Boss routed it to team support",
        "Ann claimed it",
        "Ann asked for advice (1-A1)",
        "Boss gave it to Bob",
    ]


async def test_the_history_speaks_italian_too(chat: Chat) -> None:
    await chat.say("boss", "team add support")
    await chat.mention("Giulia", "Il rimborso non arriva")
    await chat.say("boss", "role console:marta consultant")
    await chat.say("ann", "claim 1")
    await chat.say("ann", "ask 1 Cosa rispondo? console:marta")
    await chat.say("ann", "lang it")

    shown = await chat.say("ann", "show 1")

    assert (
        shown.split("Cronologia:")[1]
        .strip()
        .splitlines()[-1]
        .endswith("Ann ha chiesto un consiglio (1-A1)")
    )


def _audited_actions() -> set[str]:
    """Every action name the handlers write to the audit log, read from their source."""
    found: set[str] = set()
    for path in HANDLERS.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
                position = {"audit": 3, "_changed": 2}.get(name)
                if position is not None and len(node.args) > position:
                    found |= _strings(node.args[position])
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if isinstance(key, ast.Constant) and key.value == "action":
                        found |= _strings(value)
    return found


def _strings(node: ast.AST) -> set[str]:
    return {
        n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    }


@pytest.mark.parametrize("language", sorted(CATALOG))
def test_every_audited_action_has_words_in_every_language(language: str) -> None:
    actions = _audited_actions()
    assert {"created", "claimed", "advice", "routed"} <= actions  # the scan finds them
    texts = CATALOG[language]
    assert actions - set(texts.audit_actions) == set()
    assert set(texts.audit_details) <= set(texts.audit_actions)
