"""Tests of router.send."""
