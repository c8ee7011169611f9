"""Fixtures for the journal tests: real `serve` processes (shared with the lifecycle tests)."""

from tests.test_lifecycle import router_process

__all__ = ["router_process"]
