"""Fixtures for the command tests: a real `serve` process to run commands against."""

from __future__ import annotations

from tests.commands.served import served

__all__ = ["served"]
