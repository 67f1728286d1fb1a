"""What builds do to scheduled TIR functions: skip a padding's zero taps, compute padding
in the input's order, serial loops; and the helpers that read a function's blocks.
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Sequence
from typing import Any

import tvm
import tvm_ffi

# What builds do to the scheduled functions (see after_scheduling); in every cache key, so
# libraries built before a change to it are rebuilt.
AFTER_SCHEDULING = 'skip-padding-taps-where-marked|padding-in-input-order'
# A convolution's accumulation annotated so (1) has its padding's taps skipped: a schedule's
# choice, as its record was timed (see skip_padding_taps_in).
SKIP_PADDING_TAPS = 'edge_perception.skip_padding_taps'
CONV_UPDATE = 'conv2d_nhwc_update'  # the accumulation, once split from its initialisation


def prologue_length(names: Sequence[str]) -> int:
    """How many of a function's root blocks (``names``, in order) prepare its convolution's
    input (see :func:`fuse_input_prologue`): those before the padding, or before the
    convolution where it has none. 0 for a function without a convolution."""
    if 'conv2d_nhwc' not in names:
        return 0
    return names.index('pad_temp' if 'pad_temp' in names else 'conv2d_nhwc')


def workload_hash(function: Any) -> str:
    """A function's structural hash as databases name its workload."""
    return str(tvm_ffi.structural_hash(function))



def root_block_names(function: Any) -> list[str]:
    schedule = tvm.s_tir.Schedule(function)
    return [schedule.get(block).name_hint
            for block in schedule.get_child_blocks(schedule.get_sblock('root'))]


def inline_prologue(sch: Any) -> None:
    """Inline a fused input preparation into what reads it (the padded input): computed
    where each tile's input is gathered, not as a pass over the whole image."""
    blocks = sch.get_child_blocks(sch.get_sblock('root'))
    for block in blocks[:prologue_length([sch.get(block).name_hint for block in blocks])]:
        sch.compute_inline(block)


def serial_loops(mod: Any) -> Any:
    """``mod`` with every parallel loop of its TIR functions made serial.

    MetaSchedule keeps a parallel outer loop for a one-core target too, and each iteration
    then allocates its scratch tiles from TVM's workspace pool; which runs faster depends on
    the schedules, so each database records its choice (:func:`choose_loops`). A TVMScript
    round trip: TIR has no Python mutator. Measurements: docs/design/tvm.md."""
    mod = tvm.IRModule(dict(mod.functions), attrs=mod.attrs)
    for global_var, function in list(mod.functions.items()):
        if isinstance(function, tvm.tirx.PrimFunc):
            text = function.script()
            if 'T.parallel(' in text:
                parsed = tvm.script.from_source(text.replace('T.parallel(', 'T.serial('))
                mod[global_var] = (parsed[parsed.get_global_vars()[0]]
                                   if isinstance(parsed, tvm.IRModule) else parsed)
    return mod


def after_scheduling(mod: Any) -> Any:
    """``mod`` with what every build does to its scheduled TIR functions:
    :func:`skip_padding_taps_in`, then :func:`padding_in_input_order_in`."""
    mod = tvm.IRModule(dict(mod.functions), attrs=mod.attrs)
    for global_var, function in list(mod.functions.items()):
        if isinstance(function, tvm.tirx.PrimFunc):
            mod[global_var] = padding_in_input_order_in(skip_padding_taps_in(function))
    return mod


def padding_in_input_order_in(function: Any) -> Any:
    """``function`` (scheduled) with a padding filled in a pass of its own, that reads its
    input in another order of its indices, written in the input's order instead, its loops
    following that order with the innermost vectorised, where that makes the vectorised
    loop longer: the detector's stem gathered three channels from three planes per pixel;
    written channel-major each row is a contiguous copy. Outputs are identical.
    Measurements: docs/design/tvm.md."""
    found = _transposing_padding(function)
    if found is None:
        return function
    name, order = found
    schedule = tvm.s_tir.Schedule(function)
    block = schedule.get_sblock(name)
    schedule.transform_layout(block, ('write', 0),
                              lambda *indices: [indices[axis] for axis in order])
    function = schedule.mod['main']
    realize, path = next((realize, path) for realize, path in _realizes(function)
                         if realize.block.name_hint == name)
    domains = [realize.block.iter_vars[axis].dom for axis in order]
    outer = tvm.tirx.Var('outer', domains[0].extent.ty)
    inner = tvm.tirx.Var('inner', domains[-1].extent.ty)
    values: list[Any] = [None] * len(order)
    values[order[-1]] = inner
    rest = outer
    for axis, domain in reversed(list(zip(order[:-1], domains[:-1], strict=True))):
        values[axis] = tvm.tirx.floormod(rest, domain.extent)
        rest = tvm.tirx.floordiv(rest, domain.extent)
    body = tvm.s_tir.SBlockRealize(values, True, realize.block)
    body = tvm.tirx.For(inner, 0, domains[-1].extent, tvm.tirx.ForKind.VECTORIZED, body)
    extent = functools.reduce(lambda a, b: a * b, [d.extent for d in domains[:-1]])
    kind = (tvm.tirx.ForKind.PARALLEL if path[0].kind == tvm.tirx.ForKind.PARALLEL
            else tvm.tirx.ForKind.SERIAL)
    nest = tvm.tirx.For(outer, 0, extent, kind, body)
    top = path[0].loop_var
    return function.with_body(tvm_ffi.structural_map(
        function.body, [(tvm.tirx.For, lambda loop: nest if loop.loop_var.same_as(top)
                         else loop)]))


def _transposing_padding(function: Any) -> tuple[str, list[int]] | None:
    """The name of a block filling a padded buffer in a loop nest of its own at the root,
    from a function parameter read in another order of its iteration variables, with that
    order (axis of the block's variables, outermost first), if the input's order puts a
    longer axis innermost; else None."""
    for realize, path in _realizes(function):
        block = realize.block
        store = block.body
        if (not path or not isinstance(store, tvm.tirx.BufferStore)
                or not _only_child(path, realize)):
            continue
        variables = [iter_var.var for iter_var in block.iter_vars]
        if (_padding_condition(store.value) is None or len(store.indices) != len(variables)
                or not all(i.same_as(v) for i, v in zip(store.indices, variables, strict=True))):
            continue  # not a padding written at the block's own variables, in their order
        reads: list[Any] = []
        tvm_ffi.structural_walk(store.value.args[1], [(tvm.ir.expr.TensorLoad, reads.append)])
        for read in reads:
            if not any(read.source.same_as(parameter) for parameter in function.params):
                continue
            order = []
            for index in read.indices:
                used = [v for v in _variables(index) if any(v.same_as(w) for w in variables)]
                if len(used) != 1:
                    break
                order.append(next(a for a, w in enumerate(variables) if w.same_as(used[0])))
            if (sorted(order) == list(range(len(variables))) and order != sorted(order)
                    and int(block.iter_vars[order[-1]].dom.extent)
                    > int(block.iter_vars[-1].dom.extent)):
                return block.name_hint, order
    return None


def _realizes(function: Any) -> list[tuple[Any, list[Any]]]:
    """Every SBlockRealize of ``function`` below its root, with the loops around it."""
    loops: list[Any] = []
    realizes: list[tuple[Any, list[Any]]] = []

    def visit_loop(loop: Any, visitor: Any) -> None:
        loops.append(loop)
        visitor.default_visit(loop)
        loops.pop()

    def visit_realize(realize: Any, visitor: Any) -> None:
        realizes.append((realize, list(loops)))
        visitor.default_visit(realize)

    tvm_ffi.structural_visit(function.body, [(tvm.tirx.For, visit_loop),
                                             (tvm.s_tir.SBlockRealize, visit_realize)])
    return realizes[1:] if realizes and not realizes[0][1] else realizes


def _only_child(path: Sequence[Any], realize: Any) -> bool:
    """Whether ``path``'s loops hold nothing but each other and ``realize``."""
    return all(inner.same_as(outer.body) for outer, inner in
               zip(path, [*path[1:], realize], strict=True))


_COMM_REDUCE = 2  # an SBlock iteration variable's kind: a reduction


def skip_padding_taps_in(function: Any) -> Any:
    """``function`` (scheduled) with the taps of each convolution marked
    :data:`SKIP_PADDING_TAPS` that read its zero padding skipped.

    onnxruntime's kernels skip a 3x3 convolution's border zeros; ours multiplied by them.
    The padding's condition is read at the accumulation's indices, split into its bounds,
    and each bound tested once around the loops it does not depend on; a bound only an
    inner loop decides is left to the multiplication. Outputs are identical (only additions
    of exact zeros are skipped). Only where the schedule asks: a test among a tile's
    register loops can stop LLVM keeping the accumulators in registers, so skipping is a
    choice the tuner times (:func:`epilogue_in_tile`, :func:`seed_database`).
    Measurements: docs/design/tvm.md."""
    realizes = _realizes(function)
    padded = _padded_buffers(realize.block for realize, _ in realizes)
    analyzer = tvm.sym.Analyzer()
    guards: dict[Any, list[Any]] = collections.defaultdict(list)
    for realize, path in realizes:
        for bound in _padding_bounds(realize, path, padded, analyzer):
            at = _guard_loop(bound, realize, path)
            if at is not None:
                guards[at].append(bound)
    if not guards:
        return function

    def guarded(loop: Any) -> Any:
        bounds = guards.get(loop.loop_var)
        if not bounds:
            return loop
        body = tvm.tirx.IfThenElse(functools.reduce(tvm.tirx.And, bounds), loop.body, None)
        return tvm.tirx.For(loop.loop_var, loop.min, loop.extent, loop.kind, body,
                            loop.thread_binding, loop.annotations, loop.step)

    return function.with_body(tvm_ffi.structural_map(function.body, [(tvm.tirx.For, guarded)]))


def _padded_buffers(blocks: Any) -> dict[Any, tuple[list[Any], Any]]:
    """The buffers a block fills with ``if_then_else(inside, x, 0)`` at its own iteration
    variables: each with those variables and the condition on them."""
    padded = {}
    for block in blocks:
        store = block.body
        if isinstance(store, tvm.tirx.BufferStore):
            inside = _padding_condition(store.value)
            if inside is not None and all(isinstance(i, tvm.tirx.Var) for i in store.indices):
                padded[store.buffer] = (list(store.indices), inside)
    return padded


def _padding_condition(value: Any) -> Any | None:
    """``inside`` if ``value`` is ``if_then_else(inside, x, 0.0)``, else None."""
    if (isinstance(value, tvm.ir.expr.Call)
            and value.op.same_as(tvm.ir.Op.get('prim.if_then_else'))
            and isinstance(value.args[2], tvm.tirx.FloatImm) and value.args[2].value == 0.0):
        return value.args[0]
    return None


def _padding_bounds(realize: Any, path: Sequence[Any], padded: dict[Any, tuple[list[Any], Any]],
                    analyzer: Any) -> list[Any]:
    """The bounds (``1 <= y + ry``, ...) under which an accumulation ``acc += data * w``
    reads real data, in the loop variables on ``path``; [] for any other block. Unit loops
    stand for their start: they must not pin a bound inside them."""
    block, store = realize.block, realize.block.body
    if (int(block.annotations.get(SKIP_PADDING_TAPS, 0)) != 1 or block.init is not None
            or not isinstance(store, tvm.tirx.BufferStore)
            or not isinstance(store.value, tvm.tirx.Add)
            or not isinstance(store.value.b, tvm.tirx.Mul)):
        return []
    insides = []
    for factor in (store.value.b.a, store.value.b.b):
        if isinstance(factor, tvm.ir.expr.TensorLoad) and factor.source in padded:
            names, inside = padded[factor.source]
            insides.append(_substituted(inside, dict(zip(names, factor.indices, strict=True))))
        elif (inside := _padding_condition(factor)) is not None:
            insides.append(inside)
    units = {loop.loop_var: loop.min for loop in path if int(loop.extent) == 1}
    bindings = {iter_var.var: _substituted(value, units)
                for iter_var, value in zip(block.iter_vars, realize.iter_values, strict=True)}
    return [bound for inside in insides
            for bound in _conjuncts(analyzer.simplify(_substituted(inside, bindings)))]


def _guard_loop(bound: Any, realize: Any, path: Sequence[Any]) -> Any | None:
    """The variable of the loop whose body ``bound`` should guard: the innermost loop it
    depends on, if that is not vectorised and a reduction loop of more than one iteration
    lies below it (a test per few multiplications would cost more than it skips)."""
    depth = {loop.loop_var: at for at, loop in enumerate(path)}
    used = [depth[var] for var in _variables(bound) if var in depth]
    if not used:
        return None
    at = max(used)
    bindings = zip(realize.block.iter_vars, realize.iter_values, strict=True)
    reducing = {var for iter_var, value in bindings if iter_var.iter_type == _COMM_REDUCE
                for var in _variables(value)}
    if path[at].kind == tvm.tirx.ForKind.VECTORIZED or not any(
            loop.loop_var in reducing and int(loop.extent) > 1 for loop in path[at + 1:]):
        return None
    return path[at].loop_var


def _conjuncts(condition: Any) -> list[Any]:
    if isinstance(condition, tvm.tirx.And):
        return _conjuncts(condition.a) + _conjuncts(condition.b)
    return [condition]


def _substituted(expr: Any, values: dict[Any, Any]) -> Any:
    return tvm_ffi.structural_map(expr, [(tvm.tirx.Var, lambda var: values.get(var, var))])


def _variables(expr: Any) -> list[Any]:
    found: list[Any] = []
    tvm_ffi.structural_walk(expr, [(tvm.tirx.Var, found.append)])
    return found

