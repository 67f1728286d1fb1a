"""The tuning design space that computes each convolution's epilogue inside its tiles."""

from __future__ import annotations

from typing import Any

import numpy as np
import tvm
from tvm import s_tir
from tvm.s_tir import meta_schedule as ms

from edge_perception.runtime.tvm.target import CompileTarget
from edge_perception.runtime.tvm.tir_passes import SKIP_PADDING_TAPS
from edge_perception.runtime.tvm.tuning.design_space import cpu_design_space, epilogue_in_tile


def _run(function: Any, arguments: list[np.ndarray]) -> np.ndarray:
    built = tvm.compile(tvm.IRModule({'main': function}), target='llvm')
    tensors = [tvm.runtime.tensor(value) for value in arguments]
    built['main'](*tensors)
    return tensors[-1].numpy()


def _random_arguments(function: Any) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.standard_normal([int(d) for d in buffer.shape]).astype('float32')
            for buffer in function.params]


def test_each_convolution_gets_one_design_with_its_epilogue_in_the_tile(
        classifier_functions: dict[str, Any]) -> None:
    convolutions = [name for name in classifier_functions if 'conv2d' in name]
    assert len(convolutions) == 4
    for name, function in classifier_functions.items():
        designs = epilogue_in_tile(s_tir.Schedule(function, seed=1), num_cores=1)
        if name not in convolutions:
            assert designs == [], name
            continue
        assert len(designs) == 1, name
        sch = designs[0]
        blocks = sch.get_child_blocks(sch.get_sblock('root'))
        conv = sch.get_sblock('conv2d_nhwc')
        output = blocks[-1]  # bias and ReLU inlined into the block writing the result
        assert sch.get(output).name_hint != 'conv2d_nhwc'
        # Computed inside the convolution's outer tile loop, not as a pass after it.
        assert sch.get_sref(sch.get_loops(output)[0]).same_as(
            sch.get_sref(sch.get_loops(conv)[0])), name
        arguments = _random_arguments(function)
        np.testing.assert_allclose(_run(sch.mod['main'], [a.copy() for a in arguments]),
                                   _run(function, [a.copy() for a in arguments]),
                                   rtol=1e-4, atol=1e-4, err_msg=name)


def test_the_cpu_space_adds_the_design_to_the_default_ones_for_convolutions_only(
        classifier_functions: dict[str, Any]) -> None:
    target = tvm.target.Target(CompileTarget('cpu').spec())

    def designs(name: str, space: Any) -> int:
        # num_threads given: its default asks psutil, which only the tuning extra installs.
        context = ms.TuneContext(tvm.IRModule({'main': classifier_functions[name]}),
                                 target=target, space_generator=space, rand_state=1,
                                 num_threads=1)
        return len(context.generate_design_space())

    for name in ('fused_multiply_subtract_transpose_conv2d_add_relu1', 'fused_conv2d1_add1_relu11',
                 'max_pool2d11', 'fused_matmul_add41'):
        default = designs(name, 'post-order-apply')
        assert designs(name, cpu_design_space(1)) == default + ('conv2d' in name), name


def test_the_design_leaves_skipping_the_padding_taps_to_the_tuner(
        classifier_functions: dict[str, Any]) -> None:
    function = classifier_functions['fused_conv2d1_add1_relu11']
    chosen = set()
    for seed in range(1, 17):
        sch = epilogue_in_tile(s_tir.Schedule(function, seed=seed), num_cores=1)[0]
        chosen.add(int(sch.get(sch.get_sblock('conv2d_nhwc')).annotations[SKIP_PADDING_TAPS]))
    assert chosen == {0, 1}
