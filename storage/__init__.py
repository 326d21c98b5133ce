"""Inloop's storage: SQLModel tables, the engine, repository functions and migrations.

Nothing here imports `bot` or `handlers`: ids are plain strings at this layer.
"""
