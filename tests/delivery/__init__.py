"""Tests of router.delivery."""
