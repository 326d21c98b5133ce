"""Intake: where customer mentions come in from outside the chat (webhook, feeds)."""
