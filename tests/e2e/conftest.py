"""Fixtures of the end-to-end suites."""

from tests.e2e.localcloud.testing import local_cloud  # noqa: F401  (a module-scoped fixture)
