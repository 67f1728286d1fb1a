"""The committed models still reach the accuracy recorded in the manifest (through TVM)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_perception.cli import main
from edge_perception.models.evaluate import EVALUATORS, held_out_frames
from edge_perception.runtime.manifest import Manifest
from edge_perception.runtime.tvm.store import ModelStore

# The manifest was recorded on 300 test frames; re-checking on the first 100 keeps the test
# quick, at the price of sampling noise (a swapped or broken model misses by far more).
FRAMES = 100
TOLERANCE = 0.06


@pytest.fixture(scope='module')
def store(repo_root: Path, tvm_cache: Path) -> ModelStore:
    return ModelStore(Manifest.load(repo_root / 'model_zoo'), cache_dir=tvm_cache)


@pytest.mark.parametrize('model', ['detector', 'sign_classifier', 'light_state'])
@pytest.mark.parametrize('variant', ['full', 'half', 'quarter'])
def test_recorded_accuracy_is_reached(store: ModelStore, model: str, variant: str) -> None:
    recorded = store.manifest.variant(model, variant).metrics
    measured = EVALUATORS[model](store, variant, held_out_frames(FRAMES))
    # Real-light metrics (real_*) come from eval --real: test_real_lights checks those.
    accuracy_keys = [k for k in recorded if not k.startswith(('latency', 'real_'))]
    assert accuracy_keys
    for key in accuracy_keys:
        assert measured[key] == pytest.approx(recorded[key], abs=TOLERANCE), key


def test_full_variants_reach_the_targets(store: ModelStore) -> None:
    assert store.manifest.variant('detector', 'full').metrics['light_map50'] >= 0.90
    assert store.manifest.variant('sign_classifier', 'full').metrics['top1'] >= 0.97
    assert store.manifest.variant('light_state', 'full').metrics['top1'] >= 0.97


def test_eval_command_prints_every_variant(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(['eval', '--models', 'sign_classifier', '--frames', '30']) == 0
    lines = capsys.readouterr().out.splitlines()
    for variant in ('full', 'half', 'quarter'):
        assert any(line.startswith('sign_classifier') and f' {variant} ' in line
                   and 'top1=' in line for line in lines), lines


def test_eval_command_reports_a_missing_manifest(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(['eval', '--zoo', str(tmp_path)]) == 2
    assert 'Cannot read manifest' in capsys.readouterr().err
