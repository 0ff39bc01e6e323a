"""Fixtures of the resilience suite."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.resilience.helpers import PrivateRedis


@pytest.fixture
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    """A redis-server of the test's own (see ``PrivateRedis``)."""
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server")
    server = PrivateRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()
