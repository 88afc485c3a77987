"""pytest glue for suites that use the local cloud: the skip reason and a fixture."""

from __future__ import annotations

import time

import pytest

from tools.localcloud.cloud import LocalCloud, missing_prerequisites

from .engine import DeploymentError


def skip_unless_local_cloud_possible() -> pytest.MarkDecorator:
    """`pytestmark` for e2e modules: skip, naming what is missing, where we cannot run."""
    problems = missing_prerequisites()
    return pytest.mark.skipif(bool(problems), reason="local cloud unavailable: " + "; ".join(problems))


@pytest.fixture(scope="module")
def local_cloud():
    """One LocalCloud per test module, torn down (everything removed) afterwards."""
    with LocalCloud() as cloud:
        yield cloud


def destroy_what_is_left(engine) -> None:
    """After a module's scenarios: a scenario that failed midway leaves nothing behind."""
    if engine.state.order:
        try:
            engine.destroy()
        except DeploymentError as error:
            print(f"cleanup destroy failed: {error}")


def wait_for(predicate, what: str, seconds: float = 60) -> None:
    """Polls `predicate` once a second until it holds; fails naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")
