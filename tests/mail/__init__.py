"""Tests of router.mail."""
