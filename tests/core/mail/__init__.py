"""Tests of router.core.mail."""
