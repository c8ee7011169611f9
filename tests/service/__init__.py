"""Tests of router.service."""
