"""Our Relax rewrites and the choice of what a focused tuning run tunes."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest
import tvm
import tvm_ffi
from tvm import relax
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.analysis import estimate_tir_flops

from edge_perception.runtime.manifest import Manifest, ModelLoadError
from edge_perception.runtime.tvm.database import builds_prologue, database_serial_loops
from edge_perception.runtime.tvm.engine import TvmEngine
from edge_perception.runtime.tvm.lowering import compile_onnx, lowered, tuned_module
from edge_perception.runtime.tvm.relax_passes import fast_sigmoid
from edge_perception.runtime.tvm.store import ModelStore
from edge_perception.runtime.tvm.target import CompileTarget
from edge_perception.runtime.tvm.tir_passes import SKIP_PADDING_TAPS, serial_loops
from edge_perception.runtime.tvm.tuning.choices import choose_loops, choose_prologue
from edge_perception.runtime.tvm.tuning.ranking import rank_in_model, spaced
from edge_perception.runtime.tvm.tuning.record_lines import RecordLines
from edge_perception.runtime.tvm.tuning.seeding import seed_database
from edge_perception.runtime.tvm.tuning.task_time import task_headroom, task_seconds
from edge_perception.runtime.tvm.tuning.timing import seconds_taking_turns

from .conftest import committed_database


def _sigmoid_module(length: int) -> tvm.IRModule:
    builder = relax.BlockBuilder()
    x = relax.Var('x', relax.TensorType((length,), 'float32'))
    with builder.function('main', [x]):
        with builder.dataflow():
            out = builder.emit_output(relax.op.sigmoid(x))
        builder.emit_func_output(out)
    return builder.get()


def test_fast_sigmoid_replaces_every_sigmoid_and_keeps_its_values() -> None:
    values = np.concatenate([np.linspace(-100, 100, 20001, dtype=np.float32),
                             np.array([-1e30, -88.5, 88.5, 1e30], np.float32)])
    original = _sigmoid_module(len(values))
    module = fast_sigmoid()(original)
    assert 'R.sigmoid(' in original.script()
    assert 'R.sigmoid(' not in module.script()
    executable = tvm.compile(relax.transform.LegalizeOps()(module), target='llvm')
    vm = relax.VirtualMachine(executable, tvm.cpu())
    got = vm['main'](tvm.runtime.tensor(values)).numpy()
    expected = 0.5 * (1 + np.tanh(values.astype(np.float64) / 2))  # sigmoid, no overflow
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


def _costs_with_records_of(workloads: int, repo_root: Path, tmp_path: Path
                           ) -> tuple[Any, dict[str, Any], dict[str, float]]:
    """The sign classifier quarter's tuning records of its first ``workloads`` workloads only
    (a database copy), its tuning tasks by name, and each task's ranking cost."""
    store = ModelStore.of(repo_root / 'model_zoo')
    cpu = CompileTarget('cpu')
    committed = committed_database(store, 'sign_classifier', 'quarter')
    records = [json.loads(line) for line in
               (committed / 'database_tuning_record.json').read_text().splitlines()]
    kept = list(dict.fromkeys(record[0] for record in records))[:workloads]
    shutil.copy(committed / 'database_workload.json', tmp_path)
    (tmp_path / 'database_tuning_record.json').write_text(
        ''.join(json.dumps(record) + '\n' for record in records if record[0] in kept))
    target = tvm.target.Target(cpu.spec())
    module = lowered(store.verified_onnx('sign_classifier', 'quarter'),
                      store.input_shape('sign_classifier', 1), target)
    database = ms.database.JSONDatabase(work_dir=str(tmp_path))
    tasks = {task.task_name: task for task in ms.relax_integration.extract_tasks(module, target)}
    return database, tasks, {name: task_seconds(database, task) for name, task in tasks.items()}


def _has_records(database: Any, task: Any) -> bool:
    return bool(database.get_top_k(database.commit_workload(task.dispatched[0]), 1))


def test_focus_ranks_a_tuned_function_by_its_best_measured_time(repo_root: Path,
                                                                tmp_path: Path) -> None:
    """A function with tuning records counts its best measured run (times its calls), one
    without counts its work at 100 GFLOP/s."""
    database, tasks, costs = _costs_with_records_of(1, repo_root, tmp_path)
    tuned = [name for name, task in tasks.items() if _has_records(database, task)]
    assert len(tuned) == 1
    task = tasks[tuned[0]]
    best = min(sum(float(run) for run in record.run_secs) / len(record.run_secs)
               for record in database.get_top_k(database.commit_workload(task.dispatched[0]),
                                                1000))
    assert costs[tuned[0]] == pytest.approx(task.weight * best)
    for name, task in tasks.items():
        if name not in tuned:
            assert costs[name] == pytest.approx(
                task.weight * estimate_tir_flops(task.dispatched[0]) / 1e11)


def test_focus_ranks_tuned_functions_by_time_above_the_best_rate_reached(
        repo_root: Path, tmp_path: Path) -> None:
    """Of the tuned functions, the fastest per FLOP has nothing left to gain and every other
    one its time minus its work at that rate; untuned ones keep their whole estimate."""
    database, tasks, costs = _costs_with_records_of(3, repo_root, tmp_path)
    headroom = task_headroom(database, list(tasks.values()))
    tuned = {name for name, task in tasks.items() if _has_records(database, task)}
    assert len(tuned) == 3
    work = {name: task.weight * estimate_tir_flops(task.dispatched[0])
            for name, task in tasks.items()}
    fastest = max(tuned, key=lambda name: work[name] / costs[name])
    assert headroom[fastest] == pytest.approx(0.0, abs=1e-12)
    rate = work[fastest] / costs[fastest]
    for name in tasks:
        expected = costs[name] - work[name] / rate if name in tuned else costs[name]
        assert headroom[name] == pytest.approx(expected)
        assert headroom[name] >= -1e-12


def _slow_records_timed_fast(repo_root: Path, tmp_path: Path, factors: Sequence[float]
                             ) -> tuple[list[str], int, int, str, int, float]:
    """The sign classifier quarter's database in ``tmp_path`` with copies of its heaviest
    function's slowest record appended, their tuner times set to ``factors`` times its best
    record's: (lines before, number of the best, workload, function name, lines with the
    copies, the function's share of the model then)."""
    store = ModelStore.of(repo_root / 'model_zoo')
    committed = committed_database(store, 'sign_classifier', 'quarter')
    records = [json.loads(line) for line in
               (committed / 'database_tuning_record.json').read_text().splitlines()]
    database, tasks, committed_costs = _costs_with_records_of(1000, repo_root, tmp_path)
    tuned = [name for name, task in tasks.items() if _has_records(database, task)]
    heaviest = tasks[max(tuned, key=committed_costs.__getitem__)]
    workload = RecordLines(tmp_path).workload_index(heaviest.dispatched[0])
    timed = [(sum(record[1][1]) / len(record[1][1]), number)
             for number, record in enumerate(records)
             if record[0] == workload and max(record[1][1]) < 1]  # not a failed build
    slowest_seconds, slowest = max(timed)
    fastest_seconds, fastest = min(timed)
    assert slowest_seconds > 3 * fastest_seconds  # a schedule the model must notice
    lines = [json.dumps(record) for record in records]
    for factor in factors:
        copy = json.loads(lines[slowest])
        copy[1][1] = [fastest_seconds * factor] * len(copy[1][1])
        lines.append(json.dumps(copy))
    (tmp_path / 'database_tuning_record.json').write_text(''.join(f'{line}\n' for line in lines))
    tampered = ms.database.JSONDatabase(work_dir=str(tmp_path))
    costs = {name: task_seconds(tampered, task) for name, task in tasks.items()}
    share = costs[heaviest.task_name] / sum(costs.values())
    return lines, fastest, workload, heaviest.task_name, len(records), share


def _rank_quarter(repo_root: Path, database: Path, **options: Any) -> list[str]:
    store = ModelStore.of(repo_root / 'model_zoo')
    return rank_in_model(store.verified_onnx('sign_classifier', 'quarter'), database,
                         input_shape=store.input_shape('sign_classifier', 1),
                         target=CompileTarget('cpu'), **options)


def test_ranking_in_the_model_drops_a_record_the_tuner_timed_too_fast(
        repo_root: Path, tmp_path: Path) -> None:
    """A slow record of the sign classifier quarter's heaviest function, its tuner time set
    just below the best one's, makes the whole model slower: ranking in the model drops it
    and nothing else of that function; no other line of the database changes but those the
    tuner ranked above a kept record."""
    lines, _, workload, name, count, share = _slow_records_timed_fast(repo_root, tmp_path,
                                                                      [0.99])
    report = _rank_quarter(repo_root, tmp_path, candidates=2, min_share=share * 0.999)

    kept = (tmp_path / 'database_tuning_record.json').read_text().splitlines()
    assert lines[count] not in kept
    assert [line for line in lines if line in kept] == kept  # order kept, nothing rewritten
    dropped = [json.loads(line) for line in lines if line not in kept]
    assert [record[0] for record in dropped].count(workload) == 1
    # The heaviest function alone had that share; then, with records of the stem with the
    # input's preparation fused in, that choice; then the loops.
    line, *choices = report
    assert [choice.split(':')[0] for choice in choices] in (
        ['loops'], ['input preparation', 'loops'])
    assert line.startswith(f'{name}: ')
    assert line.count('(kept)') == 1


def test_ranking_after_a_run_also_times_the_record_the_run_started_from(
        repo_root: Path, tmp_path: Path) -> None:
    """A "run" appending three slow records timed faster than the old best (spaced 1 %+ apart,
    so the two candidates are new ones): the old best is ranked too, and kept."""
    lines, fastest, _, _, count, share = _slow_records_timed_fast(repo_root, tmp_path,
                                                                  [0.9, 0.8, 0.7])
    line = _rank_quarter(repo_root, tmp_path, candidates=2, min_share=share * 0.999,
                         tuned_from=count)[0]

    kept = (tmp_path / 'database_tuning_record.json').read_text().splitlines()
    assert lines[fastest] in kept
    assert not set(lines[count:]) & set(kept)  # all three ranked above it: dropped
    assert line.count('(before the run) (kept)') == 1


def test_ranking_candidates_skip_near_copies_of_the_one_before() -> None:
    ranked = [(100.0, 7), (100.5, 3), (101.0, 9), (101.2, 1), (130.0, 4), (131.0, 2)]
    assert spaced(ranked, 3) == [(100.0, 7), (101.0, 9), (130.0, 4)]
    assert spaced(ranked, 10) == [(100.0, 7), (101.0, 9), (130.0, 4)]  # 131 < 1.01 * 130
    assert spaced(ranked[:1], 3) == [(100.0, 7)]


@pytest.mark.parametrize('exec_mode', ['bytecode', 'compiled'])
def test_timing_a_function_inside_the_model_refuses_one_never_seen_called(
        repo_root: Path, tmp_path: Path, exec_mode: str) -> None:
    """Ranking times a function through the bytecode VM's instrument: a name the model never
    calls, or a compiled VM (no instrument calls at all), is an error, not a time of 0."""
    store = ModelStore.of(repo_root / 'model_zoo')
    shape = store.input_shape('sign_classifier', 1)
    library = tmp_path / 'model.so'
    compile_onnx(store.verified_onnx('sign_classifier', 'quarter'), library, input_shape=shape,
                 target=CompileTarget('cpu'), exec_mode=exec_mode)
    heaviest = 'fused_conv2d1_add1_relu11'  # called once per inference
    cpu = CompileTarget('cpu')
    if exec_mode == 'bytecode':
        [seconds] = seconds_taking_turns([library], shape, cpu, function=heaviest, rounds=1)
        assert seconds > 0
    with pytest.raises(RuntimeError, match='fused_conv2d1_add1_relu11x was not called'):
        seconds_taking_turns([library], shape, cpu, function=heaviest + 'x', rounds=1)
    if exec_mode == 'compiled':
        with pytest.raises(RuntimeError, match=f'{heaviest} was not called'):
            seconds_taking_turns([library], shape, cpu, function=heaviest, rounds=1)


def _parallel_loops(mod: tvm.IRModule) -> int:
    return sum(function.script().count('T.parallel(') for function in mod.functions.values()
               if isinstance(function, tvm.tirx.PrimFunc))


def test_serial_loops_leave_no_parallel_loop_and_the_same_outputs(repo_root: Path,
                                                                  tmp_path: Path) -> None:
    store = ModelStore.of(repo_root / 'model_zoo')
    cpu = CompileTarget('cpu')
    shape = store.input_shape('sign_classifier', 1)
    databases = [committed_database(store, 'sign_classifier', 'quarter')]
    tuned = tuned_module(store.static_onnx('sign_classifier', 'quarter', 1), shape,
                         tvm.target.Target(cpu.spec()), databases)
    assert _parallel_loops(tuned) > 0
    assert _parallel_loops(serial_loops(tuned)) == 0
    assert set(serial_loops(tuned).functions) == set(tuned.functions)
    inputs = np.random.default_rng(3).uniform(0, 255, shape).astype(np.float32)
    outputs = []
    for serial in (False, True):
        library = tmp_path / f'{serial}.so'
        compile_onnx(store.verified_onnx('sign_classifier', 'quarter'), library,
                     input_shape=shape, target=cpu, databases=databases, serial=serial)
        vm = relax.VirtualMachine(tvm.runtime.load_module(str(library)), tvm.cpu())
        outputs.append(vm['main'](tvm.runtime.tensor(inputs)).numpy())
    np.testing.assert_allclose(outputs[1], outputs[0], rtol=1e-6, atol=1e-7)


def test_a_database_records_its_loop_choice_and_builds_follow_it(zoo_tuned_here: Path,
        tmp_path: Path) -> None:
    """Ranking ends by timing the model with parallel and with serial loops and records the
    faster in the database; builds then differ (another library) and a bad record is refused."""
    store = ModelStore(Manifest.load(zoo_tuned_here), cache_dir=tmp_path / 'cache')
    cpu = CompileTarget('cpu')
    database = store.tuning_database('sign_classifier', 'quarter', batch=1, target=cpu)
    (database / 'build_options.json').unlink(missing_ok=True)
    parallel_library = store.library_path('sign_classifier', 'quarter', batch=1, target=cpu)
    line = choose_loops(store.verified_onnx('sign_classifier', 'quarter'), database,
                        input_shape=store.input_shape('sign_classifier', 1), target=cpu)
    assert line.startswith('loops: parallel ')
    chosen = database_serial_loops(database)
    assert line.endswith(f'{"serial" if chosen else "parallel"} kept')
    for serial in (True, False):
        (database / 'build_options.json').write_text(json.dumps({'serial_loops': serial}))
        library = store.library_path('sign_classifier', 'quarter', batch=1, target=cpu)
        assert (library == parallel_library) is not serial
    (database / 'build_options.json').write_text('{"serial_loops": "yes"}')
    with pytest.raises(ModelLoadError, match="serial_loops must be true or false, not 'yes'"):
        store.library_path('sign_classifier', 'quarter', batch=1, target=cpu)


def test_a_database_records_whether_the_input_preparation_is_fused(zoo_tuned_here: Path,
        tmp_path: Path) -> None:
    """Ranking also times the model with the input's preparation fused into the first
    convolution and apart; the choice joins the loop choice, and builds follow it."""
    store = ModelStore(Manifest.load(zoo_tuned_here), cache_dir=tmp_path / 'cache')
    cpu = CompileTarget('cpu')
    database = store.tuning_database('sign_classifier', 'quarter', batch=1, target=cpu)
    (database / 'build_options.json').write_text('{"serial_loops": true}')
    fused_library = store.library_path('sign_classifier', 'quarter', batch=1, target=cpu)
    line = choose_prologue(store.verified_onnx('sign_classifier', 'quarter'), database,
                           input_shape=store.input_shape('sign_classifier', 1), target=cpu)
    assert line.startswith('input preparation: fused ')
    chosen = builds_prologue([database])
    assert line.endswith(f'{"fused" if chosen else "apart"} kept')
    assert database_serial_loops(database)  # the loop choice stays
    assert not builds_prologue([])  # untuned builds: as before the fusion
    for fused in (True, False):
        (database / 'build_options.json').write_text(json.dumps({'input_prologue': fused,
                                                                 'serial_loops': True}))
        library = store.library_path('sign_classifier', 'quarter', batch=1, target=cpu)
        assert (library == fused_library) is fused
    apart = _tir_functions(store, database, prologue=False)
    assert not [name for name in apart if 'transpose_conv2d' in name]
    (database / 'build_options.json').write_text('{"input_prologue": 1}')
    with pytest.raises(ModelLoadError, match='input_prologue must be true or false, not 1'):
        store.library_path('sign_classifier', 'quarter', batch=1, target=cpu)


def _tir_functions(store: ModelStore, database: Path, *, prologue: bool = True) -> set[str]:
    """Names of the TIR functions of a sign_classifier quarter build applying ``database``."""
    mod = tuned_module(store.static_onnx('sign_classifier', 'quarter', 1),
                       store.input_shape('sign_classifier', 1),
                       tvm.target.Target(CompileTarget('cpu').spec()), [database],
                       prologue=prologue)
    return {global_var.name_hint for global_var, function in mod.functions_items()
            if isinstance(function, tvm.tirx.PrimFunc)}


def test_the_input_preparation_fused_into_the_first_convolution_starts_from_its_records(
        zoo_tuned_here: Path, tmp_path: Path) -> None:
    """A database tuned before the preparation was fused in builds as before; seeded from its
    own records of the first convolution, the fused function is built, and correct."""
    cpu = CompileTarget('cpu')
    store = ModelStore(Manifest.load(zoo_tuned_here), cache_dir=tmp_path / 'cache')
    database = store.tuning_database('sign_classifier', 'quarter', batch=1, target=cpu)
    target = tvm.target.Target(cpu.spec())
    model, shape = store.static_onnx('sign_classifier', 'quarter', 1), (1, 3, 32, 32)
    fused = [task.dispatched[0] for task in ms.relax_integration.extract_tasks(
        lowered(model, shape, target), target) if 'transpose_conv2d' in task.task_name]
    assert len(fused) == 1  # scaling and transposition joined the first convolution
    # The database as it was before the fusion: no records of the fused function.
    fused_hash = str(tvm_ffi.structural_hash(fused[0]))
    workloads = (database / 'database_workload.json').read_text().splitlines()
    lines = [line for line in (database / 'database_tuning_record.json').read_text()
             .splitlines() if json.loads(workloads[json.loads(line)[0]])[0] != fused_hash]
    (database / 'database_tuning_record.json').write_text(''.join(f'{line}\n' for line in lines))
    before = _tir_functions(store, database)
    assert not [name for name in before if 'transpose_conv2d' in name]
    assert [name for name in before if name.startswith('fused_multiply_subtract_transpose')]

    records = seed_database(model, database, database, input_shape=shape, target=cpu,
                            per_function=2, on_measured=lambda *_: None)
    seeded = (database / 'database_tuning_record.json').read_text().splitlines()[len(lines):]
    assert records == len(lines) + len(seeded)
    # Seeding then also gives each convolution records that skip its padding's zeros
    # (test_padding_taps.py); these are the ones derived from the convolution alone.
    added = [line for line in seeded if SKIP_PADDING_TAPS not in line]
    assert 1 <= len(added) <= 2
    times_before = {json.dumps(json.loads(line)[1][1]) for line in lines}
    for line in added:
        (instructions, _), seconds = json.loads(line)[1][:2]
        assert json.dumps(seconds) not in times_before  # timed here, not copied
        assert 'ComputeInline' in json.dumps(instructions[:4])  # the preparation, inlined
    after = _tir_functions(store, database)
    assert [name for name in after if 'transpose_conv2d' in name]
    assert not [name for name in after if name.startswith('fused_multiply_subtract_transpose')
                and 'conv2d' not in name]
    library = tmp_path / 'fused.so'
    compile_onnx(model, library, input_shape=shape, target=cpu, databases=[database])
    engine = TvmEngine(library, device='cpu', input_shape=shape)
    inputs = np.random.default_rng(5).uniform(0, 255, shape).astype(np.float32)
    reference = onnxruntime.InferenceSession(
        str(store.manifest.path('sign_classifier', 'quarter')), providers=['CPUExecutionProvider'])
    np.testing.assert_allclose(engine.run(inputs), reference.run(None, {'input': inputs})[0],
                               atol=2e-4, rtol=1e-3)
