"""Shared fixtures: paths of the source tree and a per-session TVM cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope='session')
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope='session', autouse=True)
def tvm_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Compiled libraries go to a per-run cache unless the caller chose one (CI reuse)."""
    cache = Path(os.environ.setdefault(
        'EDGE_PERCEPTION_CACHE', str(tmp_path_factory.mktemp('tvm-cache'))))
    return cache
