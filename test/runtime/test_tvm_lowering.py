"""Our Relax rewrites and the choice of what a focused tuning run tunes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tvm
from tvm import relax
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.analysis import estimate_tir_flops

from edge_perception.runtime.tvm_engine import (
    CompileTarget,
    ModelStore,
    _lowered,
    _task_seconds,
    fast_sigmoid,
)


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
    expected = 1 / (1 + np.exp(-values.astype(np.float64)))
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


def test_focus_ranks_a_tuned_function_by_its_best_measured_time(repo_root: Path,
                                                                tmp_path: Path) -> None:
    """A function with tuning records counts its best measured run (times its calls), one
    without counts its work at 100 GFLOP/s."""
    store = ModelStore.of(repo_root / 'model_zoo')
    cpu = CompileTarget('cpu')
    committed = store.tuning_database('sign_classifier', 'quarter', batch=1, target=cpu)
    lines = (committed / 'database_tuning_record.json').read_text().splitlines()
    first = [json.loads(line) for line in lines if json.loads(line)[0] == json.loads(lines[0])[0]]
    shutil.copy(committed / 'database_workload.json', tmp_path)
    (tmp_path / 'database_tuning_record.json').write_text(
        '\n'.join(json.dumps(record) for record in first) + '\n')
    best = min(sum(record[1][1]) / len(record[1][1]) for record in first)
    target = tvm.target.Target(cpu.spec())
    module = _lowered(store.verified_onnx('sign_classifier', 'quarter'),
                      store.input_shape('sign_classifier', 1), target)
    records = ms.database.JSONDatabase(work_dir=str(tmp_path))
    costs = {task.task_name: (task, _task_seconds(records, task))
             for task in ms.relax_integration.extract_tasks(module, target)}
    tuned = [name for name, (task, _) in costs.items()
             if records.get_top_k(records.commit_workload(task.dispatched[0]), 1)]
    assert len(tuned) == 1
    task, seconds = costs[tuned[0]]
    assert seconds == pytest.approx(task.weight * best)
    for name, (task, seconds) in costs.items():
        if name not in tuned:
            assert seconds == pytest.approx(
                task.weight * estimate_tir_flops(task.dispatched[0]) / 1e11)
