"""Relax passes of our lowering: the input's preparation fused into the first convolution,
and a vectorisable sigmoid.
"""

from __future__ import annotations

import collections
from typing import Any

import tvm
from tvm import relax, te, topi

# TIR function kinds as relax.transform.AnnotateTIROpPattern marks them (TVM's OpPatternKind).
_INJECTIVE = 2
_OUT_ELEMWISE_FUSABLE = 4  # a convolution: elementwise functions after it fuse into it


def fuse_input_prologue() -> Any:
    """A pass fusing the elementwise preparation of the model's input (the detector's
    x / 255 - 0.5 and NCHW -> NHWC transposition) into the convolution that reads it.

    Relax fuses elementwise functions after a convolution, never before it, so the prepared
    input made a round trip through memory. Marked injective, the convolution joins the
    preparation's group; the tuned schedule inlines the preparation into the convolution's
    padded tiles (see :func:`inline_prologue`). Smaller models can lose, so each database
    records whether to fuse (:func:`choose_prologue`). Measurements: docs/design/tvm.md."""
    return _FuseInputPrologue()


@tvm.transform.module_pass(opt_level=0, name='FuseInputPrologue')
class _FuseInputPrologue:
    def transform_module(self, mod: tvm.IRModule, ctx: Any) -> tvm.IRModule:
        main = mod['main']
        call_tir = tvm.ir.Op.get('relax.call_tir')
        calls = [(binding.var, binding.value.args[0], list(binding.value.args[1].fields))
                 for block in main.body.blocks for binding in block.bindings
                 if isinstance(binding.value, relax.Call) and binding.value.op == call_tir]
        uses = collections.Counter(callee for _, callee, _ in calls)
        from_input = set(main.params)  # values the model's input alone determines
        for var, callee, args in calls:
            pattern = int(mod[callee].attrs['op_pattern'])
            data = [arg for arg in args if not isinstance(arg, tvm.ir.expr.Constant)]
            if pattern <= _INJECTIVE and data and all(arg in from_input for arg in data):
                from_input.add(var)
            elif (pattern == _OUT_ELEMWISE_FUSABLE and uses[callee] == 1
                  and args[0] in from_input and args[0] not in main.params):
                mod[callee] = mod[callee].with_attr('op_pattern', _INJECTIVE)
        return mod


def _fast_sigmoid(x: te.Tensor) -> te.Tensor:
    exp = topi.fast_exp(topi.negative(x))
    return te.compute(x.shape, lambda *i: 1.0 / (1.0 + exp(*i)), name='fast_sigmoid',
                      tag='elemwise')


@relax.expr_functor.mutator
class _SigmoidRewriter(relax.PyExprMutator):  # type: ignore[misc]
    def visit_call_(self, call: relax.Call) -> relax.Expr:
        if isinstance(call.op, tvm.ir.Op) and call.op.name == 'relax.sigmoid':
            return self.builder_.call_te(_fast_sigmoid, call.args[0])
        return super().visit_call_(call)


def fast_sigmoid() -> Any:
    """A pass writing sigmoid(x) as 1 / (1 + fast_exp(-x)), TVM's polynomial exp: LLVM calls
    libm's expf one element at a time; the polynomial vectorises. Relative error below 1e-6
    (tested). Measurements: docs/design/tvm.md."""
    return _FastSigmoid()


@tvm.transform.module_pass(opt_level=0, name='FastSigmoid')
class _FastSigmoid:
    def transform_module(self, mod: tvm.IRModule, ctx: Any) -> tvm.IRModule:
        rewriter = _SigmoidRewriter(mod)
        for global_var, function in mod.functions_items():
            if isinstance(function, relax.Function):
                rewriter.builder_.update_func(global_var, rewriter.visit_expr(function))
        return rewriter.builder_.get()

