"""core/, tasks/, monitor/ and runtime/ (except tvm_engine) must import neither rclpy nor tvm."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PURE_PACKAGES = ('core', 'tasks', 'runtime', 'monitor')


def pure_modules(repo_root: Path) -> list[str]:
    modules = []
    for package in PURE_PACKAGES:
        for path in sorted((repo_root / 'edge_perception' / package).glob('*.py')):
            if path.stem not in ('__init__', 'tvm_engine'):
                modules.append(f'edge_perception.{package}.{path.stem}')
    return modules


def test_pure_layers_do_not_import_rclpy_or_tvm(repo_root: Path) -> None:
    modules = pure_modules(repo_root)
    assert len(modules) >= 10
    code = (
        'import importlib, sys\n'
        f'for name in {modules!r}: importlib.import_module(name)\n'
        "print(sorted(m for m in ('rclpy', 'tvm', 'torch') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            check=True, cwd=repo_root)
    assert result.stdout.strip() == '[]', result.stdout


@pytest.mark.parametrize('package', PURE_PACKAGES)
def test_pure_sources_name_no_forbidden_import(repo_root: Path, package: str) -> None:
    for path in (repo_root / 'edge_perception' / package).glob('*.py'):
        if path.stem == 'tvm_engine':
            continue
        text = path.read_text()
        assert 'import rclpy' not in text, path
        assert 'import tvm' not in text, path
        assert 'from tvm' not in text, path
