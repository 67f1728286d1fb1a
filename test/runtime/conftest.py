"""Fixtures of the TVM tests: TIR functions of a committed model, as tuning sees them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tvm

from edge_perception.runtime.tvm.lowering import lowered
from edge_perception.runtime.tvm.store import ModelStore
from edge_perception.runtime.tvm.target import CompileTarget, CpuTarget

# The CPU whose committed databases the tests read, whatever CPU runs them: the fullest
# (the input's preparation fused into the stem, records that skip the padding's taps).
REFERENCE_CPU = CpuTarget('x86_64', 'znver5', 'znver5')


def committed_database(store: ModelStore, model: str, variant: str) -> Path:
    """The reference CPU's one-core database of ``model``/``variant`` in ``store``."""
    return store.tuning_database(model, variant, batch=1,
                                 target=CompileTarget('cpu', 1, REFERENCE_CPU))


@pytest.fixture(scope='session')
def classifier_functions(repo_root: Path) -> dict[str, Any]:
    """The sign classifier quarter's TIR functions by name, as tuning sees them."""
    store = ModelStore.of(repo_root / 'model_zoo')
    target = tvm.target.Target(CompileTarget('cpu').spec())
    module = lowered(store.static_onnx('sign_classifier', 'quarter', 1),
                      store.input_shape('sign_classifier', 1), target)
    return {var.name_hint: function.with_attr('global_symbol', 'main')
            for var, function in module.functions_items()
            if isinstance(function, tvm.tirx.PrimFunc)}
