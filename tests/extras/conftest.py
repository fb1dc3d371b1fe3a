"""Fixtures the extra-environment tests share with the integration tests."""

from tests.integration.conftest import speech  # noqa: F401  (Piper-spoken questions)
