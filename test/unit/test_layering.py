"""The layers of DESIGN.md: import-linter checks them (pyproject.toml, run by ./scripts/test);
these tests show the checks bite, and that importing a pure layer loads no heavy library."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# Layer -> libraries its import must not load (directly or through anything it imports).
FORBIDDEN_LOADS = {
    'core': ('cv2', 'rclpy', 'tvm', 'torch', 'onnx'),
    'tasks': ('rclpy', 'tvm', 'torch'),
    'synthetic': ('rclpy', 'tvm', 'torch'),
    'monitor': ('rclpy', 'tvm', 'torch', 'cv2'),
}


def modules_of(repo_root: Path, package: str) -> list[str]:
    return [f'edge_perception.{package}.{path.stem}'
            for path in sorted((repo_root / 'edge_perception' / package).glob('*.py'))
            if path.stem != '__init__']


@pytest.mark.parametrize('package', sorted(FORBIDDEN_LOADS))
def test_importing_a_pure_layer_loads_no_heavy_library(repo_root: Path, package: str) -> None:
    modules = modules_of(repo_root, package)
    assert modules
    forbidden = FORBIDDEN_LOADS[package]
    code = ('import importlib, sys\n'
            f'for name in {modules!r}: importlib.import_module(name)\n'
            f'print(sorted(m for m in {forbidden!r} if m in sys.modules))\n')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            check=True, cwd=repo_root)
    assert result.stdout.strip() == '[]', result.stdout


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    linter = Path(sys.prefix) / 'bin' / 'lint-imports'
    return subprocess.run([str(linter), '--config', str(tree / 'pyproject.toml'),
                           '--no-cache'], capture_output=True, text=True, cwd=tree,
                          env={'PYTHONPATH': str(tree), 'PATH': '/usr/bin:/bin'})


@pytest.fixture
def source_copy(repo_root: Path, tmp_path: Path) -> Path:
    shutil.copytree(repo_root / 'edge_perception', tmp_path / 'edge_perception',
                    ignore=shutil.ignore_patterns('__pycache__'))
    shutil.copy(repo_root / 'pyproject.toml', tmp_path)
    return tmp_path


def test_the_layers_hold_in_this_tree(source_copy: Path) -> None:
    result = _lint_imports(source_copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert '0 broken' in result.stdout


@pytest.mark.parametrize(('module', 'line', 'contract'), [
    ('core/scheduling.py', 'import cv2', 'core is pure Python'),
    ('core/config.py', 'from edge_perception.tasks import pipelines', 'Layers'),
    ('tasks/frames.py', 'import tvm', 'Only runtime/tvm imports TVM'),
    ('ros/container.py', 'from edge_perception.runtime.tvm.tuning import search',
     'never load tuning code'),
    ('ros/task_node.py', 'from edge_perception.ros import container', "The car's ROS modules"),
])
def test_a_forbidden_import_breaks_a_contract(source_copy: Path, module: str, line: str,
                                               contract: str) -> None:
    path = source_copy / 'edge_perception' / module
    text = path.read_text()
    header_end = text.index('\n\n', text.index('"""', 3)) + 2  # after the docstring
    path.write_text(text[:header_end] + line + '  # noqa\n' + text[header_end:])
    result = _lint_imports(source_copy)
    assert result.returncode != 0
    broken = [row for row in result.stdout.splitlines() if row.endswith('BROKEN')]
    assert any(contract in row for row in broken), result.stdout
