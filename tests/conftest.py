"""Fixtures shared by every test module."""

pytest_plugins = ["tests.broker", "tests.web_fakes"]
