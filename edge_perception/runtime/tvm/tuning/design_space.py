"""Our addition to MetaSchedule's CPU design space: a convolution's epilogue in its tiles.
"""

from __future__ import annotations

from typing import Any

from edge_perception.runtime.tvm.tir_passes import (
    SKIP_PADDING_TAPS,
    inline_prologue,
)

# The parallel extent the default CPU rules give (MetaSchedule's ``max_jobs_per_core``), so
# schedules from both spaces split their outer loops alike.
_JOBS_PER_CORE = 16
_CONV_LOOPS = 7  # n, y, x, channel; kernel y, kernel x, input channel


def cpu_design_space(num_cores: int) -> Any:
    """MetaSchedule's default CPU design space joined with :func:`epilogue_in_tile`.

    The default space's best schedules for a fused convolution wrote the whole convolution to
    a scratch buffer and made a second pass for the epilogue; computed right after each output
    tile, while it is still in cache, the epilogue costs less. Joined, not replacing: the
    tuner keeps every schedule it had. Measurements: docs/design/tvm.md."""
    from tvm.s_tir import meta_schedule as ms

    return ms.space_generator.SpaceGeneratorUnion([
        ms.space_generator.PostOrderApply(),
        ms.space_generator.ScheduleFn(lambda sch: epilogue_in_tile(sch, num_cores)),
    ])


def epilogue_in_tile(sch: Any, num_cores: int) -> list[Any]:
    """One design of a function holding one channels-last 2-D convolution: its loops tiled
    (spatial, spatial, reduce, spatial, reduce, spatial, as MetaSchedule's CPU rules tile),
    the elementwise blocks after it inlined into the last one, which is computed at the
    first or second spatial tile. No design (``[]``) for any other function."""
    root = sch.get_sblock('root')
    blocks = sch.get_child_blocks(root)
    names = [sch.get(block).name_hint for block in blocks]
    if 'conv2d_nhwc' not in names:
        return []
    inline_prologue(sch)
    at = names.index('conv2d_nhwc')
    conv, epilogue = blocks[at], blocks[at + 1:]
    loops = sch.get_loops(conv)
    if len(loops) != _CONV_LOOPS:
        return []
    for block in epilogue[:-1]:
        sch.compute_inline(block)
    sch.annotate(conv, 'meta_schedule.tiling_structure', 'SSRSRS')
    # Skipping the padding's zeros pays or costs depending on the tiles (see
    # skip_padding_taps_in): the tuner times both.
    sch.annotate(conv, SKIP_PADDING_TAPS, sch.sample_categorical([0, 1], [0.5, 0.5]))
    spatial = [sch.split(loop, sch.sample_perfect_tile(loop, n=4, max_innermost_factor=64))
               for loop in loops[:4]]
    reduce = [sch.split(loop, sch.sample_perfect_tile(loop, n=2, max_innermost_factor=64))
              for loop in loops[4:]]
    order = ([tiles[0] for tiles in spatial] + [tiles[1] for tiles in spatial]
             + [tiles[0] for tiles in reduce] + [tiles[2] for tiles in spatial]
             + [tiles[1] for tiles in reduce] + [tiles[3] for tiles in spatial])
    sch.reorder(*order)
    if epilogue:
        # After the outer spatial tile (fewer, larger epilogue loops) or the second one
        # (the tile still in L1): which is faster depends on the tile sizes.
        second = sch.get(sch.sample_categorical([0, 1], [0.5, 0.5])) == 1
        sch.reverse_compute_at(epilogue[-1], order[7] if second else order[3],
                               preserve_unit_loops=True)
    sch.annotate(root, 'meta_schedule.parallel', _JOBS_PER_CORE * num_cores)
    sch.annotate(root, 'meta_schedule.vectorize', 64)
    sch.annotate(root, 'meta_schedule.unroll_explicit',
                 sch.sample_categorical([0, 16, 64, 512], [0.25] * 4))
    if 'pad_temp' in names[:at]:
        pad = blocks[names.index('pad_temp')]
        sch.compute_at(pad, sch.sample_compute_location(pad), preserve_unit_loops=True)
    return [sch]

