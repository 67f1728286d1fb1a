"""Task models: variant routing and packed (batched) requests on real TVM modules."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from edge_perception.core.config import load_config
from edge_perception.runtime.manifest import Manifest, ModelLoadError
from edge_perception.runtime.task_models import TaskModels, cpu_placements
from edge_perception.runtime.tvm.store import ModelStore
from edge_perception.synthetic.scenes import generate_frame
from edge_perception.tasks.detector_decoding import detector_input
from edge_perception.tasks.pipelines import Inference


@pytest.fixture(scope='module')
def models(repo_root: Path, tvm_cache: Path) -> TaskModels:
    config = load_config(repo_root / 'config' / 'f1tenth.yaml')
    store = ModelStore(Manifest.load(config.model_dir), cache_dir=tvm_cache)
    return TaskModels(config.task('traffic_light'), store, lanes=cpu_placements(config),
                      batch_sizes=(1, 2))


def test_packed_requests_give_each_job_its_own_output(models: TaskModels) -> None:
    frames = [detector_input(generate_frame('test', i).image) for i in range(2)]
    first, second = (next(models.requests(Inference('detector', f))) for f in frames)
    assert first.key == second.key
    packed = first.run_together([second])
    alone = [first.run_together([])[0], second.run_together([])[0]]
    for together, single in zip(packed, alone, strict=True):
        assert together.shape == (1, 9, 60, 80)
        np.testing.assert_allclose(together, single, atol=2e-4, rtol=1e-3)
    assert not np.allclose(packed[0], packed[1])  # two frames, two different outputs


def test_loaded_batch_sizes_report_latency(models: TaskModels) -> None:
    request = next(models.requests(Inference('detector', np.zeros((1, 3, 240, 320), np.float32))))
    assert request.batch_latency_ns(2) is not None
    assert request.batch_latency_ns(2) > 0
    assert request.batch_latency_ns(3) is None  # never loaded: never packed


def test_requests_are_bound_to_the_variant_of_their_time(models: TaskModels) -> None:
    inputs = np.zeros((1, 3, 240, 320), np.float32)
    before = next(models.requests(Inference('detector', inputs)))
    models.variant = 'quarter'
    try:
        after = next(models.requests(Inference('detector', inputs)))
        assert (before.variant, after.variant) == ('full', 'quarter')
        assert before.key != after.key  # different models never share a batch
    finally:
        models.variant = 'full'


def test_unknown_variant_is_refused(models: TaskModels) -> None:
    with pytest.raises(ModelLoadError, match=r"task 'traffic_light' has no variant 'tiny'"):
        models.variant = 'tiny'


def test_staged_model_chains_to_the_whole_models_output(repo_root: Path, tvm_cache: Path) -> None:
    config = load_config(repo_root / 'config' / 'f1tenth.yaml')
    store = ModelStore(Manifest.load(config.model_dir), cache_dir=tvm_cache)
    task = dataclasses.replace(config.task('traffic_light'), variants=('quarter',),
                               variant='quarter', stages=('gpu', 'cpu'))
    staged = TaskModels(task, store, lanes=cpu_placements(config))
    stages = staged.stages['detector', 'quarter']
    assert [stage.lane for stage in stages] == ['gpu', 'cpu']
    cut = stages[0].part[1] if stages[0].part else None
    assert cut in store.cut_points('detector', 'quarter')
    assert stages[1].part is not None
    assert stages[1].part[0] == cut
    assert all(stage.profiled_ns > 0 for stage in stages)

    frame = detector_input(generate_frame('test', 3).image)
    requests = staged.requests(Inference('detector', frame))
    request, lanes = next(requests), []
    try:
        while True:
            lanes.append(request.lane)
            request = requests.send(request.run_together([])[0])
    except StopIteration as done:
        output = done.value
    assert lanes == ['gpu', 'cpu']
    whole = store.engine('detector', 'quarter').run(frame)
    np.testing.assert_allclose(output, whole, atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(staged('detector', frame), whole, atol=1e-5, rtol=1e-4)
