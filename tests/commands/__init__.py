"""Tests of router.commands."""
