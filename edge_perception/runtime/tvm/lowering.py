"""ONNX -> Relax -> TIR -> a shared library: the lowering every build and tuning run
shares, and the compile that applies the tuning databases.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import onnx
import tvm
from tvm import relax
from tvm.relax.frontend.onnx import from_onnx

from edge_perception.runtime.manifest import ModelLoadError, file_sha256
from edge_perception.runtime.model_split import fold_constants, with_static_input
from edge_perception.runtime.tvm.database import (
    builds_prologue,
    builds_serial,
)
from edge_perception.runtime.tvm.library_file import sidecar
from edge_perception.runtime.tvm.relax_passes import fast_sigmoid, fuse_input_prologue
from edge_perception.runtime.tvm.target import (
    CompileTarget,
    library_compiler,
)
from edge_perception.runtime.tvm.tir_passes import (
    after_scheduling,
    prologue_length,
    root_block_names,
    serial_loops,
)

# Convolution layouts (data, kernel) for CPU targets, and weights marked layout-free so that
# tuning repacks them to suit each schedule. Part of every cache key and tuning database name:
# a different lowering means different TIR workloads.
CPU_CONV_LAYOUT = {'relax.nn.conv2d': ['NHWC', 'OHWI']}
# How the Relax VM runs a CPU model's host code: 'compiled' turns its instructions (kernel
# calls, allocations) into C compiled into the library instead of bytecode the VM interprets:
# 3 us less per call (sign classifier half: 52.4 -> 49.3 us, ORT 38.9 us, side by side).
# CUDA builds keep the bytecode, the mode their path was verified with on a GPU. Part of
# every library's cache key.
CPU_VM_EXEC = 'compiled'


def read_onnx(onnx_path: Path) -> onnx.ModelProto:
    try:
        model = onnx.load(str(onnx_path))
        onnx.checker.check_model(model)
    except Exception as err:
        raise ModelLoadError(f'Cannot read ONNX model {onnx_path}: {err}') from None
    return model


def lowered(model: onnx.ModelProto, input_shape: tuple[int, ...], tvm_target: Any, *,
             prologue: bool = True) -> Any:
    """ONNX -> Relax at a static shape, convolutions in the target's layout, decomposed and
    legalised to TIR; on CPUs the weights (Relax constants) are marked layout-free, and
    with ``prologue`` each convolution computed from the model's input alone takes the
    input's elementwise preparation (scaling, transposition) into its own function (see
    :func:`fuse_input_prologue`).

    Tuning and building both start from this module, so the tuned workloads match exactly
    (a sub-model's workloads are the whole model's: one database serves both).
    """
    model = _with_identifier_input(_folded_at(model, input_shape))
    input_name = model.graph.input[0].name
    with warnings.catch_warnings():
        # ONNX tensor names like '/stem/Relu_output_0' are renamed for Relax: harmless.
        warnings.filterwarnings('ignore', message='Renaming name', category=UserWarning)
        mod = from_onnx(model, shape_dict={input_name: list(input_shape)},
                        keep_params_in_input=False)
    cpu = tvm_target.kind.name == 'llvm'
    passes = [relax.transform.DecomposeOpsForInference(), relax.transform.CanonicalizeBindings()]
    if cpu:
        # Channels-last lets MetaSchedule vectorise over channels: on the detector's heaviest
        # conv, 48 trials reached 0.69 ms in NHWC against 1.14 ms in NCHW.
        passes.extend([relax.transform.ConvertLayout(CPU_CONV_LAYOUT), fast_sigmoid()])
    # Relax's zero pipeline, with the prologue's fusion between its analysis and its fusion.
    passes.extend([relax.transform.LegalizeOps(), relax.transform.AnnotateTIROpPattern(),
                   relax.transform.FoldConstant()])
    if cpu and prologue:
        passes.append(fuse_input_prologue())
    passes.extend([relax.transform.FuseOps(), relax.transform.FuseTIR()])
    if cpu:
        # Lets a tuned schedule read the weights in its own blocked order (packed once at
        # build time, see tuned_module) instead of OHWI: the detector's 32->32 convolution
        # went from 1145 to 594 us a call after the same 48 trials (this CPU, AVX-512).
        passes.append(relax.transform.AttachAttrLayoutFreeBuffers())
    with tvm_target:
        return tvm.transform.Sequential(passes)(mod)



def _folded_at(model: onnx.ModelProto, input_shape: tuple[int, ...]) -> onnx.ModelProto:
    """``model`` with its shape arithmetic folded at ``input_shape`` (see
    :func:`fold_constants`); as it is where shapes cannot be inferred statically."""
    try:
        static = with_static_input(model, input_shape)
    except (ModelLoadError, onnx.shape_inference.InferenceError):
        return model
    folded = fold_constants(static)
    return model if folded is static else folded  # nothing to fold: imported as before


def _with_identifier_input(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with its input renamed 'input' when its name is no C identifier.

    A sub-model's input is an inner tensor such as '/block1/Relu_output_0'; the CUDA code
    generator passes it to the first kernel as a parameter of that name, which nvcc rejects.
    Names are not part of a TIR workload's hash, so tuning records still apply.
    """
    name = model.graph.input[0].name
    if name.isidentifier():
        return model
    renamed = onnx.ModelProto()
    renamed.CopyFrom(model)
    renamed.graph.input[0].name = 'input'
    for node in renamed.graph.node:
        node.input[:] = ['input' if used == name else used for used in node.input]
    return renamed


def compile_onnx(model: onnx.ModelProto, library: Path, *, input_shape: tuple[int, ...],
                 target: CompileTarget, databases: Sequence[Path] = (),
                 exec_mode: str | None = None, serial: bool | None = None,
                 prologue: bool | None = None) -> None:
    """Import ``model`` at a static ``input_shape``, compile for ``target`` with the tuning
    ``databases`` (see :func:`tuned_module`), export. ``exec_mode``: the Relax VM's, by
    default the one this target's lanes run. ``serial``: make the loops serial (see
    :func:`serial_loops`); ``prologue``: fuse the input's preparation (see
    :func:`fuse_input_prologue`); both by default as the first database records."""
    tvm_target = tvm.target.Target(target.spec())
    if prologue is None:
        prologue = builds_prologue(databases)
    mod = tuned_module(model, input_shape, tvm_target, databases, prologue=prologue)
    if serial is None:
        serial = builds_serial(databases, target)
    if serial:
        mod = serial_loops(mod)
    if target.device == 'cuda':
        from tvm.s_tir import dlight

        # Relax on CUDA needs every TIR function bound to GPU threads; dlight's rules do it.
        with tvm_target:
            mod = dlight.ApplyDefaultSchedule(
                dlight.gpu.Matmul(), dlight.gpu.GEMV(), dlight.gpu.Reduction(),
                dlight.gpu.GeneralReduction(), dlight.gpu.Fallback(),
            )(mod)
    if exec_mode is None:
        exec_mode = CPU_VM_EXEC if target.device == 'cpu' else 'bytecode'
    executable = relax.build(mod, tvm_target, exec_mode=exec_mode)
    library.parent.mkdir(parents=True, exist_ok=True)
    partial = library.with_name(f'.{library.name}.{os.getpid()}.tmp.so')
    executable.export_library(str(partial), fcompile=library_compiler(target.cpu))
    sidecar(library).write_text(file_sha256(partial) + '\n', encoding='utf-8')
    partial.replace(library)  # atomic: concurrent builders never see a half-written library


def tuned_module(model: onnx.ModelProto, input_shape: tuple[int, ...], tvm_target: Any,
                 databases: Sequence[Path], *, prologue: bool = True) -> Any:
    """The lowered Relax module where every TIR function found in one of ``databases`` has
    its tuned schedule, from the first that has it (a scheduled function is marked
    'tirx.is_scheduled' and no longer matches the later ones). Weight repacking that a
    schedule asks for becomes its own function, folded into new constants here, so the
    packing costs nothing per inference. ``prologue``: the input's preparation fused into
    the first convolution where ``databases`` have records for that function."""
    mod = _scheduled(lowered(model, input_shape, tvm_target, prologue=prologue), tvm_target,
                     databases)
    if prologue and any(prologue_length(root_block_names(function))
                        for function in mod.functions.values()
                        if isinstance(function, tvm.tirx.PrimFunc)
                        and 'tirx.is_scheduled' not in (function.attrs or {})):
        # No records for it (databases from before that fusion, or none): the functions
        # those databases were tuned for.
        mod = _scheduled(lowered(model, input_shape, tvm_target, prologue=False), tvm_target,
                         databases)
    with tvm_target:
        # Folding leaves each packed weight pair as a constant tuple unpacked per call;
        # canonicalising passes the constants directly (classifier half 63.4 -> 61.3 us).
        mod = tvm.transform.Sequential([relax.transform.SplitLayoutRewritePreproc(),
                                        relax.transform.FoldConstant(),
                                        relax.transform.CanonicalizeBindings(),
                                        relax.transform.DeadCodeElimination()])(mod)
    return after_scheduling(mod)


def _scheduled(mod: Any, tvm_target: Any, databases: Sequence[Path]) -> Any:
    with tvm_target:
        for database in databases:
            mod = relax.transform.MetaScheduleApplyDatabase(str(database))(mod)
    return mod

