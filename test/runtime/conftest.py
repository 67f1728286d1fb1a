"""Fixtures of the TVM tests: TIR functions of a committed model, as tuning sees them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tvm

from edge_perception.runtime.tvm_engine import CompileTarget, ModelStore, _lowered


@pytest.fixture(scope='session')
def classifier_functions(repo_root: Path) -> dict[str, Any]:
    """The sign classifier quarter's TIR functions by name, as tuning sees them."""
    store = ModelStore.of(repo_root / 'model_zoo')
    target = tvm.target.Target(CompileTarget('cpu').spec())
    module = _lowered(store.static_onnx('sign_classifier', 'quarter', 1),
                      store.input_shape('sign_classifier', 1), target)
    return {var.name_hint: function.with_attr('global_symbol', 'main')
            for var, function in module.functions_items()
            if isinstance(function, tvm.tirx.PrimFunc)}
