"""Unit tests: they start no process (tests/process_guard.py fails any that does)."""

from tests.process_guard import pytest_runtest_call, pytest_runtest_setup, pytest_runtest_teardown

__all__ = ["pytest_runtest_call", "pytest_runtest_setup", "pytest_runtest_teardown"]
