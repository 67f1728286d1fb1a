"""TVM-compiled models: same outputs as onnxruntime, integrity checks, cache invalidation."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest
import tvm

from edge_perception.core.aligned_arrays import aligned_empty
from edge_perception.runtime.manifest import Manifest, ModelLoadError, file_sha256
from edge_perception.runtime.model_split import sub_model
from edge_perception.runtime.tvm.engine import TvmEngine, copy_holding_gil, in_place_tensor
from edge_perception.runtime.tvm.lowering import tuned_module
from edge_perception.runtime.tvm.store import ModelStore
from edge_perception.runtime.tvm.target import CompileTarget, cuda_available
from edge_perception.runtime.tvm.tuning.variants import seed_variant

# Float32 reordering between TVM's and onnxruntime's kernels; outputs are probabilities,
# log-sizes and offsets of order 1.
ATOL, RTOL = 2e-4, 1e-3
COMMITTED = [
    (model, variant)
    for model, entry in sorted(Manifest.load(Path(__file__).parents[2] / 'model_zoo')
                               .models.items())
    for variant in sorted(entry.variants)
]


@pytest.fixture(scope='module')
def store(repo_root: Path, tvm_cache: Path) -> ModelStore:
    return ModelStore(Manifest.load(repo_root / 'model_zoo'), cache_dir=tvm_cache)


def realistic_input(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, shape).astype(np.float32)


def test_every_variant_is_committed_and_small() -> None:
    assert len(COMMITTED) == 9
    assert {m for m, _ in COMMITTED} == {'detector', 'sign_classifier', 'light_state'}


@pytest.mark.parametrize(('model', 'variant'), COMMITTED)
@pytest.mark.parametrize('batch', [1, 4])
def test_tvm_matches_onnxruntime(store: ModelStore, model: str, variant: str,
                                 batch: int) -> None:
    engine = store.engine(model, variant, batch=batch)
    inputs = realistic_input(engine.input_shape, seed=batch)
    reference = onnxruntime.InferenceSession(
        str(store.manifest.path(model, variant)), providers=['CPUExecutionProvider'])
    expected = reference.run(None, {'input': inputs})[0]
    np.testing.assert_allclose(engine.run(inputs), expected, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize(('model', 'batch'), [('sign_classifier', 3), ('detector', 2)])
def test_a_cpu_batch_runs_sample_by_sample_through_the_batch_1_build(
        store: ModelStore, model: str, batch: int) -> None:
    single = store.engine(model, 'quarter')
    batched = store.engine(model, 'quarter', batch=batch)
    assert batched.library == single.library
    inputs = aligned_empty(batched.input_shape)  # the detector's samples are read in place
    inputs[...] = realistic_input(batched.input_shape, seed=5)
    outputs = batched.run(inputs)
    assert outputs.shape[0] == batch
    for sample in range(batch):
        np.testing.assert_array_equal(outputs[sample:sample + 1],
                                      single.run(inputs[sample:sample + 1]))


def test_an_output_stays_valid_after_later_runs(store: ModelStore) -> None:
    """CPU outputs are views of the VM's tensors (no copy): a later run must not write into
    an earlier output, whole model or sub-model (a stage's output is an inner tensor)."""
    cuts = store.cut_points('detector', 'half')
    part = store.parts('detector', 'half', cuts[:1])[0]
    for engine in (store.engine('sign_classifier', 'half'),
                   store.engine('detector', 'half', part=part)):
        first = engine.run(realistic_input(engine.input_shape, seed=1))
        kept = first.copy()
        second = engine.run(realistic_input(engine.input_shape, seed=2))
        assert not np.array_equal(second, kept)  # different inputs, different outputs...
        np.testing.assert_array_equal(first, kept)  # ...and the first one untouched
        assert first.dtype == np.float32


def test_a_read_only_aligned_input_is_read_in_place(store: ModelStore) -> None:
    """A shared frame's detector input (read-only, 64-byte aligned) is read where it lies;
    the outputs equal those of a copied, misaligned input, and the input is untouched."""
    engine = store.engine('detector', 'quarter')
    values = realistic_input(engine.input_shape, seed=4)
    shared = aligned_empty(engine.input_shape)
    shared[...] = values
    shared.setflags(write=False)
    assert np.shares_memory(np.from_dlpack(in_place_tensor(shared)), shared)
    misaligned = np.empty(values.size + 1, np.float32)[1:].reshape(values.shape)
    misaligned[...] = values
    assert in_place_tensor(misaligned) is None
    assert in_place_tensor(values.astype(np.float64)) is None
    small = aligned_empty((1, 3, 32, 32))
    assert in_place_tensor(small) is None  # copying 12 kB is cheaper than wrapping it
    np.testing.assert_array_equal(engine.run(shared), engine.run(misaligned))
    np.testing.assert_array_equal(shared, values)


THREAD_IO = Path('/proc/thread-self/io')


def _reads_by_this_thread() -> int:
    io = THREAD_IO.read_text(encoding='ascii')
    return int(next(line for line in io.splitlines() if line.startswith('syscr:')).split()[1])


@pytest.mark.skipif(not THREAD_IO.exists(),
                    reason='this kernel keeps no per-thread I/O counts')
def test_inference_makes_no_system_calls(store: ModelStore) -> None:
    """TVM asked the kernel for the CPU count (reading /sys/devices/system/cpu/online) in every
    parallel loop of every kernel unless TVM_NUM_THREADS bounded it: a third of a small
    model's time. Counted by this thread's read calls."""
    engine = store.engine('sign_classifier', 'half')
    image = realistic_input(engine.input_shape, seed=3)
    before = _reads_by_this_thread()
    for _ in range(20):
        engine.run(image)
    assert _reads_by_this_thread() - before < 5  # reading the counter itself: one or two


def test_tvm_threads_are_bounded_unless_the_user_chose() -> None:
    script = ('import os; from edge_perception.runtime.tvm import engine; '
              'print(os.environ["TVM_NUM_THREADS"], len(os.sched_getaffinity(0)))')
    env = {k: v for k, v in os.environ.items() if k not in ('TVM_NUM_THREADS', 'OMP_NUM_THREADS')}
    bounded, cpus = subprocess.run([sys.executable, '-c', script], env=env, check=True,
                                   capture_output=True, text=True).stdout.split()
    assert bounded == cpus
    chosen = subprocess.run([sys.executable, '-c', script], env={**env, 'TVM_NUM_THREADS': '7'},
                            check=True, capture_output=True, text=True).stdout.split()[0]
    assert chosen == '7'


def test_wrong_input_shape_is_refused(store: ModelStore) -> None:
    engine = store.engine('sign_classifier', 'quarter')
    with pytest.raises(ValueError, match=r'input shape \(2, 3, 32, 32\), expected \(1, 3, 32'):
        engine.run(np.zeros((2, 3, 32, 32), np.float32))


def test_cache_is_reused_and_keyed_by_model_hash(zoo_copy: Path, tmp_path: Path) -> None:
    store = ModelStore(Manifest.load(zoo_copy), cache_dir=tmp_path / 'cache')
    target = CompileTarget('cpu')
    library = store.build('sign_classifier', 'quarter', batch=1, target=target)
    built_at = library.stat().st_mtime_ns
    assert store.build('sign_classifier', 'quarter', batch=1, target=target) == library
    assert library.stat().st_mtime_ns == built_at
    # Replace the model by another one (a retrained model): the key, so the library, changes.
    onnx = zoo_copy / 'sign_classifier' / 'quarter.onnx'
    shutil.copy(zoo_copy / 'sign_classifier' / 'half.onnx', onnx)
    retrained = Manifest.load(zoo_copy)
    entry = retrained.variant('sign_classifier', 'quarter')
    retrained = retrained.with_variant(
        'sign_classifier', retrained.models['sign_classifier'], 'quarter',
        type(entry)(entry.file, file_sha256(onnx), entry.width, entry.parameters))
    new_store = ModelStore(retrained, cache_dir=tmp_path / 'cache')
    rebuilt = new_store.build('sign_classifier', 'quarter', batch=1, target=target)
    assert rebuilt != library
    assert rebuilt.exists()


def test_cache_key_depends_on_target_and_batch(store: ModelStore) -> None:
    # A CUDA target states the GPU it was read from, so it exists only where one does.
    targets = [CompileTarget('cpu', 1), CompileTarget('cpu', 2)]
    targets += [CompileTarget('cuda')] if cuda_available() else []
    paths = {store.library_path('detector', 'half', batch=batch, target=target)
             for batch in (1, 4) for target in targets}
    assert len(paths) == 2 * len(targets)


def test_builds_borrow_a_database_tuned_on_another_cpu(zoo_tuned_elsewhere: Path,
                                                       tmp_path: Path) -> None:
    target = CompileTarget('cpu')
    store = ModelStore(Manifest.load(zoo_tuned_elsewhere), cache_dir=tmp_path / 'cache')
    own = store.tuning_database('sign_classifier', 'half', batch=1, target=target)
    [borrowed] = store.applied_databases('sign_classifier', 'half', batch=1, target=target)
    assert borrowed.name == own.name
    assert borrowed.parent != own.parent
    assert store.is_tuned('sign_classifier', 'half', batch=1, target=target)
    assert not store.is_tuned('sign_classifier', 'half', batch=1,
                              target=CompileTarget('cpu', 2))  # other core counts: none
    # Once this CPU has records of its own for every function, only they apply (with some
    # missing, the borrowed ones fill the gaps: the next test).
    shutil.copytree(borrowed, own)
    assert store.applied_databases('sign_classifier', 'half', batch=1, target=target) == [own]
    untuned = ModelStore(Manifest.load(zoo_tuned_elsewhere), cache_dir=tmp_path / 'cache',
                         use_tuning=False)
    assert untuned.applied_databases('sign_classifier', 'half', batch=1, target=target) == []


def test_more_threads_borrow_this_cpus_records_for_other_cores_first(
        zoo_tuned_elsewhere: Path, tmp_path: Path) -> None:
    store = ModelStore(Manifest.load(zoo_tuned_elsewhere), cache_dir=tmp_path / 'cache')
    one, two = CompileTarget('cpu', 1), CompileTarget('cpu', 2)
    [elsewhere] = store.applied_databases('sign_classifier', 'half', batch=1, target=one)
    assert store.applied_databases('sign_classifier', 'half', batch=1, target=two) == []
    other_cpu_two = zoo_tuned_elsewhere / 'tuning' / two.tag(cpu='elsewhere99') / elsewhere.name
    shutil.copytree(elsewhere, other_cpu_two)
    assert store.applied_databases('sign_classifier', 'half', batch=1,
                                   target=two) == [other_cpu_two]
    this_cpu_one = store.tuning_database('sign_classifier', 'half', batch=1, target=one)
    shutil.copytree(elsewhere, this_cpu_one)
    assert store.applied_databases('sign_classifier', 'half', batch=1,
                                   target=two) == [this_cpu_one]
    # Once the target has records of its own, another CPU's for its cores fill its gaps.
    shutil.copytree(elsewhere, store.tuning_database('sign_classifier', 'half', batch=1,
                                                     target=two))
    assert store.borrowed_database('sign_classifier', 'half', batch=1,
                                   target=two) == other_cpu_two
    engine = store.engine('sign_classifier', 'half', threads=2)
    inputs = realistic_input(engine.input_shape, seed=7)
    reference = onnxruntime.InferenceSession(
        str(store.manifest.path('sign_classifier', 'half')), providers=['CPUExecutionProvider'])
    np.testing.assert_allclose(engine.run(inputs), reference.run(None, {'input': inputs})[0],
                               atol=ATOL, rtol=RTOL)


def test_an_untuned_build_is_named_once_with_the_command_that_tunes_it(
        zoo_tuned_elsewhere: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = ModelStore(Manifest.load(zoo_tuned_elsewhere), cache_dir=tmp_path)
    three_threads = CompileTarget('cpu', 3)  # none for this CPU, none for three cores
    with caplog.at_level(logging.WARNING, logger='edge_perception.runtime.tvm.store'):
        for _ in range(2):
            assert store.applied_databases('detector', 'half', batch=1,
                                           target=three_threads) == []
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning.startswith(f'{three_threads.tag()} has no tuning database: untuned builds')
    assert '(`edge-perception tune --new-cpu --threads 3` here gives it its own)' in warning


def test_a_new_cpu_is_told_once_what_it_borrows_and_how_to_get_its_own(
        zoo_tuned_elsewhere: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = ModelStore(Manifest.load(zoo_tuned_elsewhere), cache_dir=tmp_path)
    target = CompileTarget('cpu')
    with caplog.at_level(logging.WARNING, logger='edge_perception.runtime.tvm.store'):
        borrowed = {store.applied_databases(model, variant, batch=1, target=target)[0].parent
                    for _ in range(2) for model in ('detector', 'sign_classifier')
                    for variant in ('full', 'half', 'quarter')}
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == len(borrowed)  # one line per database folder borrowed from
    for line in lines:
        assert line.startswith(f'{target.tag()} has no tuning database: builds borrow ')
        assert '(`edge-perception tune --new-cpu` here gives it its own, about ' in line
    assert {line.split('builds borrow ')[1].split(' ')[0] for line in lines} == {
        folder.name for folder in borrowed}


def _assert_classifier_matches_onnxruntime(store: ModelStore, variant: str, seed: int) -> None:
    engine = store.engine('sign_classifier', variant)
    inputs = realistic_input(engine.input_shape, seed=seed)
    reference = onnxruntime.InferenceSession(str(store.manifest.path('sign_classifier', variant)),
                                             providers=['CPUExecutionProvider'])
    np.testing.assert_allclose(engine.run(inputs), reference.run(None, {'input': inputs})[0],
                               atol=ATOL, rtol=RTOL)


def test_a_partial_database_of_this_cpu_is_completed_by_a_borrowed_one(
        zoo_tuned_elsewhere: Path, tmp_path: Path) -> None:
    """A focused tuning run on a new CPU covers a few functions (here: one); the others keep
    the borrowed schedules, and outputs stay those of onnxruntime."""
    target = CompileTarget('cpu')
    store = ModelStore(Manifest.load(zoo_tuned_elsewhere), cache_dir=tmp_path / 'cache')
    own = store.tuning_database('sign_classifier', 'half', batch=1, target=target)
    [borrowed] = store.applied_databases('sign_classifier', 'half', batch=1, target=target)
    own.mkdir(parents=True)
    shutil.copy(borrowed / 'database_workload.json', own)
    records = (borrowed / 'database_tuning_record.json').read_text().splitlines()
    first_workload = [line for line in records
                      if json.loads(line)[0] == json.loads(records[0])[0]]
    (own / 'database_tuning_record.json').write_text('\n'.join(first_workload) + '\n')
    layered = store.applied_databases('sign_classifier', 'half', batch=1, target=target)
    assert layered == [own, borrowed]
    onnx_model = store.verified_onnx('sign_classifier', 'half')
    shape = store.input_shape('sign_classifier', 1)
    tvm_target = tvm.target.Target(target.spec())

    def scheduled(databases: list[Path]) -> int:
        module = tuned_module(onnx_model, shape, tvm_target, databases)
        return sum(isinstance(func, tvm.tirx.PrimFunc) and func.attrs is not None
                   and 'tirx.is_scheduled' in func.attrs for func in module.functions.values())

    assert 1 <= scheduled([own]) < scheduled(layered) == scheduled([borrowed])
    _assert_classifier_matches_onnxruntime(store, 'half', seed=3)


def test_a_new_cpu_starts_from_another_cpus_best_records_timed_here(
        zoo_tuned_elsewhere: Path, tmp_path: Path) -> None:
    target = CompileTarget('cpu')
    store = ModelStore(Manifest.load(zoo_tuned_elsewhere), cache_dir=tmp_path / 'cache')
    source = store.borrowed_database('sign_classifier', 'quarter', batch=1, target=target)
    assert source is not None
    own = store.tuning_database('sign_classifier', 'quarter', batch=1, target=target)
    progress: list[tuple[int, int]] = []
    records = seed_variant(store, 'sign_classifier', 'quarter', batch=1, target=target,
                           source=source, per_function=2,
                           on_measured=lambda *done: progress.append(done))

    def by_trace(database: Path) -> dict[str, list[tuple[int, list[float]]]]:
        """Each record's trace -> [(workload's position in its file, measured seconds)]."""
        workloads = (database / 'database_workload.json').read_text().splitlines()
        found: dict[str, list[tuple[int, list[float]]]] = {}
        for line in (database / 'database_tuning_record.json').read_text().splitlines():
            index, (trace, seconds, *_) = json.loads(line)
            found.setdefault(json.dumps(trace), []).append(
                (json.loads(workloads[index])[0], seconds))  # the workload's hash
        return found

    theirs, ours = by_trace(source), by_trace(own)
    assert progress[-1] == (records, records) == (sum(map(len, ours.values())), records)
    their_workloads = {workload for timed in theirs.values() for workload, _ in timed}
    prepared: list[list[str]] = []
    for trace, timed in ours.items():
        for workload, seconds in timed:
            if workload in their_workloads:
                assert trace in theirs  # their schedules ...
                assert (workload, seconds) not in theirs[trace]  # ... timed here, not copied
                assert workload in {their_workload for their_workload, _ in theirs[trace]}
            else:  # the first convolution with the input's preparation, where they have
                # only records of it alone: theirs, after inlining the preparation
                prepared.append([kind for kind, *_ in json.loads(trace)[0][:5]])
    assert all(kinds == ['GetSBlock', 'GetChildBlocks', *['ComputeInline'] * 3]
               for kinds in prepared)
    workloads = [workload for timed in ours.values() for workload, _ in timed]
    per_function = [workloads.count(workload) for workload in set(workloads)]
    assert len(per_function) >= 4  # every function the other CPU tuned ...
    assert set(per_function) <= {1, 2}  # ... with its best two (fewer: none 1 % apart)
    assert 2 in per_function
    # Builds now take this CPU's records first; outputs stay those of onnxruntime.
    assert store.applied_databases('sign_classifier', 'quarter', batch=1,
                                   target=target)[0] == own
    _assert_classifier_matches_onnxruntime(store, 'quarter', seed=4)


def test_tampered_onnx_is_refused(zoo_copy: Path, tmp_path: Path) -> None:
    onnx = zoo_copy / 'detector' / 'quarter.onnx'
    onnx.write_bytes(onnx.read_bytes()[:-1] + b'\x00')
    store = ModelStore(Manifest.load(zoo_copy), cache_dir=tmp_path / 'cache')
    with pytest.raises(ModelLoadError, match=r'quarter.onnx does not match its manifest SHA'):
        store.engine('detector', 'quarter')


def test_corrupt_onnx_with_matching_hash_gives_a_clear_error(zoo_copy: Path,
                                                             tmp_path: Path) -> None:
    onnx = zoo_copy / 'detector' / 'quarter.onnx'
    onnx.write_bytes(b'not a protobuf at all')
    manifest = Manifest.load(zoo_copy)
    entry = manifest.variant('detector', 'quarter')
    manifest = manifest.with_variant('detector', manifest.models['detector'], 'quarter',
                                     type(entry)(entry.file, file_sha256(onnx), 0.25, 1))
    store = ModelStore(manifest, cache_dir=tmp_path / 'cache')
    with pytest.raises(ModelLoadError, match=r'Cannot read ONNX model .*quarter.onnx'):
        store.engine('detector', 'quarter')


def test_missing_onnx_is_named(zoo_copy: Path, tmp_path: Path) -> None:
    (zoo_copy / 'detector' / 'half.onnx').unlink()
    store = ModelStore(Manifest.load(zoo_copy), cache_dir=tmp_path / 'cache')
    with pytest.raises(ModelLoadError, match=r'Model file .*half.onnx is missing'):
        store.engine('detector', 'half')


def test_unknown_variant_is_named(store: ModelStore) -> None:
    with pytest.raises(ModelLoadError, match=r"no model 'detector' variant 'tiny'"):
        store.engine('detector', 'tiny')


def test_corrupted_library_is_refused_before_loading(store: ModelStore, tmp_path: Path) -> None:
    library = store.build('sign_classifier', 'half', batch=1, target=CompileTarget('cpu'))
    copy = tmp_path / library.name
    shutil.copy(library, copy)
    shutil.copy(library.with_name(library.name + '.sha256'), tmp_path)
    with copy.open('r+b') as stream:
        stream.seek(4096)
        stream.write(b'\xff' * 64)
    with pytest.raises(ModelLoadError, match=r'does not match its SHA-256 record'):
        TvmEngine(copy, device='cpu', input_shape=(1, 3, 32, 32))


def test_garbage_library_with_forged_record_errors_instead_of_crashing(tmp_path: Path) -> None:
    library = tmp_path / 'forged.so'
    library.write_bytes(b'\x7fELF' + b'\x00' * 200)
    (tmp_path / 'forged.so.sha256').write_text(file_sha256(library))
    with pytest.raises(ModelLoadError, match=r'Cannot load compiled library .*forged.so'):
        TvmEngine(library, device='cpu', input_shape=(1, 3, 32, 32))


def test_library_without_record_is_refused(tmp_path: Path) -> None:
    library = tmp_path / 'orphan.so'
    library.write_bytes(b'\x7fELF')
    with pytest.raises(ModelLoadError, match=r'Cannot read SHA-256 record of .*orphan.so'):
        TvmEngine(library, device='cpu', input_shape=(1, 3, 32, 32))


@pytest.mark.parametrize(('content', 'match'), [
    (None, r'Cannot read manifest .*manifest.json'),
    ('{"format": 9, "models": {}}', r'format 9, expected 1'),
    ('{"format": 1, "models": {"m": {"classes": []}}}', r"KeyError\('input_shape'\)"),
])
def test_bad_manifest_is_named(tmp_path: Path, content: str | None, match: str) -> None:
    if content is not None:
        (tmp_path / 'manifest.json').write_text(content)
    with pytest.raises(ModelLoadError, match=match):
        Manifest.load(tmp_path)


def test_manifest_save_load_round_trip(zoo_copy: Path) -> None:
    manifest = Manifest.load(zoo_copy).with_metrics('detector', 'half', {'light_map50': 0.5})
    manifest.save()
    assert Manifest.load(zoo_copy).variant('detector', 'half').metrics == {'light_map50': 0.5}


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_available(), reason='no CUDA device on this machine')
@pytest.mark.parametrize(('model', 'variant'), COMMITTED)
def test_cuda_build_matches_onnxruntime(store: ModelStore, model: str, variant: str) -> None:
    engine = store.engine(model, variant, device='cuda', lane='gpu')
    inputs = realistic_input(engine.input_shape, seed=7)
    reference = onnxruntime.InferenceSession(
        str(store.manifest.path(model, variant)), providers=['CPUExecutionProvider'])
    np.testing.assert_allclose(engine.run(inputs), reference.run(None, {'input': inputs})[0],
                               atol=ATOL * 10, rtol=RTOL * 10)


@pytest.mark.skipif(cuda_available(), reason='this machine has a CUDA device')
def test_cuda_target_needs_a_device() -> None:
    with pytest.raises(ModelLoadError, match=r'no CUDA device to compile for'):
        CompileTarget('cuda').spec()


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_available(), reason='no CUDA device on this machine')
def test_cuda_target_states_the_gpu_limits() -> None:
    spec = CompileTarget('cuda').spec()
    assert spec['arch'].startswith('sm_')
    assert spec['max_threads_per_block'] >= 256
    assert spec['host']['kind'] == 'llvm'


def test_a_sub_model_input_gets_an_identifier_name(store: ModelStore) -> None:
    """CUDA kernels take the graph input as a C parameter: '/block1/...' must not reach it."""
    cuts = store.cut_points('detector', 'half')
    back = store.parts('detector', 'half', cuts[len(cuts) // 2:][:1])[1]
    model = sub_model(store.static_onnx('detector', 'half', 1), *back)
    assert not model.graph.input[0].name.isidentifier()
    mod = tuned_module(model, store.part_input_shape('detector', 'half', 1, back),
                       tvm.target.Target(CompileTarget('cpu').spec()), [])
    assert [param.name for param in mod['main'].params] == ['input']


def test_cached_library_loads_fast_enough_for_node_start(store: ModelStore) -> None:
    """Loading is what a node start pays once the cache holds the library: no compilation."""
    library = store.build('detector', 'full', batch=1, target=CompileTarget('cpu'))
    before = library.stat().st_mtime_ns
    TvmEngine(library, device='cpu', input_shape=(1, 3, 240, 320))
    assert library.stat().st_mtime_ns == before  # loaded, not rebuilt


def test_unknown_device_is_refused() -> None:
    with pytest.raises(ModelLoadError, match=r"unknown device 'tpu' \(use cpu or cuda\)"):
        CompileTarget('tpu').spec()


def test_manifest_paths_cannot_escape_the_model_directory(zoo_copy: Path) -> None:
    manifest = Manifest.load(zoo_copy)
    entry = manifest.variant('detector', 'half')
    escaped = manifest.with_variant('detector', manifest.models['detector'], 'half',
                                    type(entry)('../../etc/passwd', entry.sha256, 0.5, 1))
    with pytest.raises(ModelLoadError, match=r'is outside the model directory'):
        escaped.path('detector', 'half')


def test_world_writable_model_directory_is_refused(zoo_copy: Path, tmp_path: Path) -> None:
    (zoo_copy / 'detector').chmod(0o777)
    store = ModelStore(Manifest.load(zoo_copy), cache_dir=tmp_path / 'cache')
    with pytest.raises(ModelLoadError, match=r'detector is world-writable; refusing to load'):
        store.engine('detector', 'quarter')
    store.engine('sign_classifier', 'quarter')  # the other models still load


@pytest.mark.parametrize('make_source', [
    lambda values: values,                                 # plain memcpy
    lambda values: values.astype(np.float64),              # converted by NumPy
    lambda values: np.asfortranarray(values),              # not C-contiguous
], ids=['float32', 'float64', 'fortran-order'])
def test_engine_input_copy_keeps_every_value(make_source: Any) -> None:
    values = np.random.default_rng(3).random((2, 3, 4, 5), dtype=np.float32)
    target = np.zeros_like(values)
    copy_holding_gil(target, make_source(values))
    np.testing.assert_array_equal(target, values)


@pytest.mark.parametrize('damage', ['corrupted', 'record_lost'])
def test_a_damaged_cached_library_is_rebuilt_not_loaded(
        zoo_copy: Path, tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture) -> None:
    """build-models (and a node's start) used to keep a corrupted library and report it
    ready; loading it was then refused on every start."""
    store = ModelStore(Manifest.load(zoo_copy), cache_dir=tmp_path)
    library = store.build('sign_classifier', 'quarter', batch=1, target=CompileTarget('cpu'))
    if damage == 'corrupted':
        with library.open('r+b') as stream:
            stream.seek(4096)
            stream.write(b'\xff' * 64)
    else:
        library.with_name(library.name + '.sha256').unlink()
    with caplog.at_level(logging.WARNING, logger='edge_perception.runtime.tvm.store'):
        assert store.build('sign_classifier', 'quarter', batch=1,
                           target=CompileTarget('cpu')) == library
    assert 'does not match its SHA-256 record: rebuilding it' in caplog.text
    _assert_classifier_matches_onnxruntime(store, 'quarter', seed=3)
