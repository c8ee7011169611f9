"""Fixtures for inbox tests: a real Dovecot server."""

from tests.servers.dovecot import dovecot

__all__ = ["dovecot"]
