"""Shared fixtures: paths of the source tree and a per-session TVM cache."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


TIERS = ('unit', 'runtime', 'integration', 'replay')


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test is marked with its tier, the folder it lives in (see pyproject.toml)."""
    for item in items:
        tier = item.path.parent.name
        if tier in TIERS:
            item.add_marker(tier)


@pytest.fixture(scope='session')
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope='session', autouse=True)
def tvm_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Compiled libraries go to a per-run cache unless the caller chose one (CI reuse)."""
    cache = Path(os.environ.setdefault(
        'EDGE_PERCEPTION_CACHE', str(tmp_path_factory.mktemp('tvm-cache'))))
    return cache


@pytest.fixture
def zoo_copy(repo_root: Path, tmp_path: Path) -> Path:
    zoo = tmp_path / 'zoo'
    shutil.copytree(repo_root / 'model_zoo', zoo)
    return zoo


@pytest.fixture
def zoo_tuned_elsewhere(zoo_copy: Path) -> Path:
    """The model zoo with every committed database moved to a CPU that is not this one, of
    this machine's architecture."""
    from edge_perception.runtime.tvm.target import CompileTarget

    tuning = zoo_copy / 'tuning'
    arch = CompileTarget('cpu').cpu.arch
    for index, committed in enumerate(sorted(tuning.glob('llvm-*'))):
        cores_and_lowering = re.search(r'-(c\d+-.*)$', committed.name)
        assert cores_and_lowering is not None, committed.name
        committed.rename(tuning / f'llvm-{arch}-elsewhere{index}-{cores_and_lowering[1]}')
    return zoo_copy


@pytest.fixture
def zoo_tuned_here(zoo_copy: Path) -> Path:
    """The model zoo with the reference CPU's one-core databases (see
    runtime/conftest.py) as this CPU's own, whatever CPU runs the tests, and no other."""
    from edge_perception.runtime.tvm.target import LOWERING, CompileTarget

    tuning = zoo_copy / 'tuning'
    staged = zoo_copy / 'reference-databases'
    (tuning / f'llvm-x86_64-znver5-c1-{LOWERING}').rename(staged)
    shutil.rmtree(tuning)
    tuning.mkdir()
    staged.rename(tuning / CompileTarget('cpu').tag())
    return zoo_copy


def committed_config() -> dict[str, Any]:
    """config/f1tenth.yaml as parsed YAML, its model directory made absolute, to edit."""
    raw: dict[str, Any] = yaml.safe_load((ROOT / 'config' / 'f1tenth.yaml').read_text())
    raw['model_dir'] = str(ROOT / 'model_zoo')
    return raw


def write_config(raw: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(raw))
    return path


def launch(*args: str, containers: int = 1) -> tuple[subprocess.Popen[str], list[str]]:
    """``edge-perception launch ARGS``, once every container says what it hosts."""
    process = subprocess.Popen(
        [sys.executable, '-m', 'edge_perception.cli', 'launch', *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ))
    lines: list[str] = []
    ready = threading.Semaphore(0)

    def read() -> None:
        assert process.stdout is not None  # the containers of other lanes write here too
        for line in process.stdout:
            lines.append(line)
            if 'hosting' in line:
                ready.release()

    threading.Thread(target=read, daemon=True).start()
    for _ in range(containers):
        # A readiness wait ('hosting' comes once the lanes run): on a cold cache a container
        # compiles every variant first.
        assert ready.acquire(timeout=600), ''.join(lines)
    return process, lines
