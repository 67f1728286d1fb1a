"""Apache TVM (Relax) compilation, caching and execution of the manifest's ONNX models.

The only module that imports tvm. A compiled library is cached as
``<cache>/<model>-<variant>-b<batch>-<key>.so`` where the key hashes the ONNX file's SHA-256,
the target and the TVM version, so a changed model, target or TVM rebuilds it. Each library
has a ``.sha256`` sidecar written at build time and checked before loading, because a .so is
native code: a corrupted or swapped file is refused instead of being loaded.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import itertools
import json
import logging
import os
import re
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import tvm
import tvm_ffi
from tvm import relax, te, topi
from tvm.relax.frontend.onnx import from_onnx

from edge_perception.runtime.manifest import Manifest, ModelLoadError, file_sha256
from edge_perception.runtime.model_split import (
    Part,
    cut_tensors,
    shape_of,
    sub_model,
    with_static_input,
)
from edge_perception.runtime.tvm.target import (
    CpuTarget,
    check_runs_here,
    host_target,
    library_compiler,
)
from edge_perception.tasks.detector_decoding import INPUT_ALIGNMENT

# Convolution layouts (data, kernel) for CPU targets, and weights marked layout-free so that
# tuning repacks them to suit each schedule. Part of every cache key and tuning database name:
# a different lowering means different TIR workloads.
CPU_CONV_LAYOUT = {'relax.nn.conv2d': ['NHWC', 'OHWI']}
LOWERING = 'nhwc-prepack-fastsigmoid'
# What builds do to the scheduled functions (see after_scheduling); in every cache key, so
# libraries built before a change to it are rebuilt.
AFTER_SCHEDULING = 'skip-padding-taps-where-marked|padding-in-input-order'
# A convolution's accumulation annotated so (1) has its padding's taps skipped: a schedule's
# choice, as its record was timed (see skip_padding_taps_in).
SKIP_PADDING_TAPS = 'edge_perception.skip_padding_taps'
_CONV_UPDATE = 'conv2d_nhwc_update'  # the accumulation, once split from its initialisation
# How the Relax VM runs a CPU model's host code: 'compiled' turns its instructions (kernel
# calls, allocations) into C compiled into the library instead of bytecode the VM interprets:
# 3 us less per call (sign classifier half: 52.4 -> 49.3 us, ORT 38.9 us, side by side).
# CUDA builds keep the bytecode, the mode their path was verified with on a GPU. Part of
# every library's cache key.
CPU_VM_EXEC = 'compiled'
# Tuning databases live beside the models: <model_dir>/tuning/<target tag>/<model>-...
TUNING_DIR = 'tuning'
# What `tune --new-cpu` costs a model variant, said where a CPU borrows: the six committed
# took 28 minutes on a 2-core Xeon (docs/performance/2026-12-06-new-cpu-and-aarch64.md).
NEW_CPU_MINUTES_PER_VARIANT = 5

_log = logging.getLogger(__name__)


def _bound_tvm_threads() -> None:
    """Set ``TVM_NUM_THREADS`` to the CPUs this process may use, unless the user set it
    (or ``OMP_NUM_THREADS``, which TVM reads next).

    Without either, every parallel loop of every kernel asks
    ``std::thread::hardware_concurrency()``, which re-reads /sys/devices/system/cpu/online:
    three system calls per kernel, 16 us of the classifier's 43 us call (half variant; 27 us
    with the variable set, onnxruntime 33 us, side by side). Lanes still size their own thread
    pools (``runtime.config_threadpool``); this is only the ceiling, which was half the cores
    on x86 (TVM's guess at hyper-threads). Set once, here, before any lane thread runs TVM:
    changing the environment while another thread reads it is not safe.
    """
    if 'TVM_NUM_THREADS' not in os.environ and 'OMP_NUM_THREADS' not in os.environ:
        os.environ['TVM_NUM_THREADS'] = str(len(os.sched_getaffinity(0)))


_bound_tvm_threads()


def default_cache_dir() -> Path:
    """``$EDGE_PERCEPTION_CACHE``, else ``$XDG_CACHE_HOME/edge_perception/tvm``."""
    if 'EDGE_PERCEPTION_CACHE' in os.environ:
        return Path(os.environ['EDGE_PERCEPTION_CACHE'])
    base = Path(os.environ.get('XDG_CACHE_HOME', Path.home() / '.cache'))
    return base / 'edge_perception' / 'tvm'


def cuda_available() -> bool:
    try:
        return bool(tvm.cuda(0).exist)
    except Exception:
        return False


def _cuda_device_attributes() -> dict[str, Any]:
    """The GPU's architecture and limits, read from device 0: MetaSchedule's thread binding
    and dlight's rules refuse a CUDA target that does not state them."""
    if not cuda_available():
        raise ModelLoadError('no CUDA device to compile for (TVM sees none on this machine)')
    gpu = tvm.cuda(0)
    return {'kind': 'cuda', 'arch': 'sm_' + gpu.compute_version.replace('.', ''),
            'max_threads_per_block': gpu.max_threads_per_block,
            'max_shared_memory_per_block': gpu.max_shared_memory_per_block,
            'thread_warp_size': gpu.warp_size}


@dataclass(frozen=True)
class CompileTarget:
    """Where a lane runs its models: 'cpu' (LLVM, ``num_cores`` threads) or 'cuda', on the
    CPU ``cpu`` (this machine's unless a cross build names another)."""

    device: str
    num_cores: int = 1
    cpu: CpuTarget = field(default_factory=host_target)

    def spec(self) -> dict[str, Any]:
        host = self.cpu.llvm(self.num_cores)
        if self.device == 'cuda':
            return {**_cuda_device_attributes(), 'host': host}
        if self.device == 'cpu':
            return host
        raise ModelLoadError(f'unknown device {self.device!r} (use cpu or cuda)')

    def serial_capable(self) -> bool:
        """A one-core CPU target, whose parallel loops may as well be serial."""
        return self.device == 'cpu' and self.num_cores == 1

    def cache_key(self) -> str:
        return json.dumps(self.spec(), sort_keys=True)

    def tag(self, *, cpu: str | None = None, cores: str | None = None) -> str:
        """Folder name for this target's tuning databases, e.g.
        'llvm-x86_64-znver5-c1-nhwc-...'; ``cpu`` replaces the CPU (or GPU architecture)
        name and ``cores`` the number of cores, e.g. '*' for a glob. Only CPUs of one
        architecture share records."""
        if self.device == 'cuda':
            arch = tvm.cuda(0).compute_version if cuda_available() else 'unknown'
            return f'cuda-sm{cpu or arch.replace(".", "")}'
        return (f'llvm-{self.cpu.arch}-{cpu or self.cpu.name}-c{cores or self.num_cores}'
                f'-{LOWERING}')


def tagged_cpu(tag: str) -> str:
    """The CPU (or GPU architecture) a tuning folder is named after (see
    :meth:`CompileTarget.tag`): 'llvm-aarch64-cortex-a78ae-c1-...' -> 'cortex-a78ae'."""
    if tag.startswith('cuda-sm'):
        return tag.removeprefix('cuda-')
    named = re.fullmatch(r'llvm-[^-]+-(.+?)-c\d+-.*', tag)
    return named[1] if named else tag


class TvmEngine:
    """A loaded TVM library bound to a device; implements :class:`InferenceEngine`."""

    def __init__(self, library: Path, *, device: str, input_shape: tuple[int, ...],
                 threads: int = 1, instrument: Callable[..., int] | None = None,
                 per_sample: bool = False) -> None:
        """``instrument``: called before and after each kernel call of a bytecode build (see
        ``relax.VirtualMachine.set_instrument``), for timing kernels inside the model.
        ``per_sample``: the library takes one sample and :meth:`run` calls it once for each
        sample of ``input_shape``'s batch (how the CPU runs a batch, see
        :meth:`ModelStore.compiled_batch`)."""
        expected = _read_sidecar(library)
        if file_sha256(library) != expected:
            raise ModelLoadError(f'Compiled library {library} does not match its SHA-256 record')
        check_runs_here(library)
        try:
            executable = tvm.runtime.load_module(str(library))
        except Exception as err:
            raise ModelLoadError(f'Cannot load compiled library {library}: {err}') from None
        self._device = tvm.cuda(0) if device == 'cuda' else tvm.cpu(0)
        self._vm = relax.VirtualMachine(executable, self._device)
        if instrument is not None:
            self._vm.set_instrument(instrument)
        self._main = self._vm['main']
        # Filled in place for every call: allocating a tensor per call cost ~25 us, a fifth of
        # the smallest classifier's whole run (151 -> 127 us). On the CPU through a NumPy view
        # of it, and outputs are viewed the same way: copyfrom() and .numpy() took 5.4 and
        # 12 us of the 78 us a classifier call cost, np.copyto and np.from_dlpack 0.4 and 1.
        self._per_sample = per_sample
        self._input = tvm.runtime.empty((1, *input_shape[1:]) if per_sample else input_shape,
                                        'float32', self._device)
        self._input_view = np.from_dlpack(self._input) if device == 'cpu' else None
        self._threads = threads
        self._configured = threading.local()
        self._lock = threading.Lock()  # a Relax VM is not thread-safe
        self.latency_ns: int | None = None
        self.device = device
        self.input_shape = input_shape
        self.library = library

    def run(self, inputs: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        if inputs.shape != self.input_shape:
            raise ValueError(f'{self.library.name}: input shape {inputs.shape}, '
                             f'expected {self.input_shape}')
        if not getattr(self._configured, 'done', False):
            # TVM's CPU thread pool is per calling thread: size it once per lane thread. Sizing
            # it also pins the caller to one core; restore the lane's own CPU set after.
            allowed = os.sched_getaffinity(0)
            tvm.get_global_func('runtime.config_threadpool')(0, self._threads)
            os.sched_setaffinity(0, allowed)
            self._configured.done = True
        with self._lock:
            start = time.perf_counter_ns()
            if self._per_sample:
                output = np.concatenate([self._call(inputs[i:i + 1]) for i in range(len(inputs))])
            else:
                output = self._call(inputs)
            spent = time.perf_counter_ns() - start
            # Smoothed, so one slow run (a page fault, a busy core) does not stop packing.
            self.latency_ns = spent if self.latency_ns is None else (
                self.latency_ns * 3 + spent) // 4
            return np.asarray(output, dtype=np.float32)  # no copy: already float32

    def _call(self, inputs: npt.NDArray[np.float32]) -> Any:
        if self._input_view is not None:
            tensor = in_place_tensor(inputs)
            if tensor is None:
                copy_holding_gil(self._input_view, inputs)
                tensor = self._input
            # A fresh tensor each call (the VM never reuses a returned one): safe to view.
            return np.from_dlpack(self._main(tensor))
        self._input.copyfrom(np.ascontiguousarray(inputs, dtype=np.float32))
        return self._main(self._input).numpy()


_IN_PLACE_MIN_BYTES = 64 * 1024


def in_place_tensor(inputs: npt.NDArray[Any]) -> Any:
    """``inputs`` as a CPU TVM tensor sharing its memory, or None where TVM cannot read it in
    place (not float32, not C-contiguous, not 64-byte aligned: see ``aligned_empty``) or a
    copy is cheaper (under 64 kB: wrapping costs 1-3 us, copying a classifier's 12 kB 0.5).

    Reading the detector's 0.9 MB input where it lies instead of copying it first: 2.58-2.68
    -> 2.49-2.58 ms a call side by side (the copy also evicted what the kernels had in cache).
    """
    if (inputs.nbytes < _IN_PLACE_MIN_BYTES or inputs.dtype != np.float32
            or not inputs.flags.c_contiguous):
        return None
    interface = inputs.__array_interface__
    address = interface['data'][0]
    if address % INPUT_ALIGNMENT:
        return None
    if not inputs.flags.writeable:
        # TVM's DLPack import predates the read-only flag and refuses read-only arrays (a
        # shared frame's input is one); the VM's kernels never write their inputs.
        interface['data'] = (address, False)
        inputs = np.asarray(_ArrayInterface(inputs, interface))
    return tvm.runtime.from_dlpack(inputs)


class _ArrayInterface:
    """Memory described by NumPy's array interface; holds ``owner`` so that an array made
    from it keeps the memory alive."""

    def __init__(self, owner: npt.NDArray[Any], interface: dict[str, Any]) -> None:
        self.owner = owner
        self.__array_interface__ = interface


def copy_holding_gil(target: npt.NDArray[Any], source: npt.NDArray[Any]) -> None:
    """``target[...] = source`` without letting the GIL go: NumPy releases it for large
    copies, and a lane then waits to get it back behind the spinning thread and the other
    lane (the urgent task's 0.9 MB input copy: wall p99 1.2 ms against 0.23 ms of CPU in a
    soak). A memoryview copy is a plain memcpy under the GIL, as fast (26 us); NumPy still
    copies what needs converting (another dtype, not contiguous)."""
    if source.dtype == target.dtype and source.flags.c_contiguous:
        target.data.cast('B')[:] = source.data.cast('B')
    else:
        np.copyto(target, source)


def _sidecar(library: Path) -> Path:
    return library.with_name(library.name + '.sha256')


def _intact(library: Path) -> bool:
    """Whether ``library`` has its SHA-256 record and matches it."""
    try:
        return file_sha256(library) == _sidecar(library).read_text(encoding='utf-8').strip()
    except OSError:
        return False


def _read_sidecar(library: Path) -> str:
    try:
        return _sidecar(library).read_text(encoding='utf-8').strip()
    except OSError as err:
        raise ModelLoadError(f'Cannot read SHA-256 record of {library}: {err}') from None


def read_onnx(onnx_path: Path) -> onnx.ModelProto:
    try:
        model = onnx.load(str(onnx_path))
        onnx.checker.check_model(model)
    except Exception as err:
        raise ModelLoadError(f'Cannot read ONNX model {onnx_path}: {err}') from None
    return model


def _lowered(model: onnx.ModelProto, input_shape: tuple[int, ...], tvm_target: Any, *,
             prologue: bool = True) -> Any:
    """ONNX -> Relax at a static shape, convolutions in the target's layout, decomposed and
    legalised to TIR; on CPUs the weights (Relax constants) are marked layout-free, and
    with ``prologue`` each convolution computed from the model's input alone takes the
    input's elementwise preparation (scaling, transposition) into its own function (see
    :func:`fuse_input_prologue`).

    Tuning and building both start from this module, so the tuned workloads match exactly
    (a sub-model's workloads are the whole model's: one database serves both).
    """
    model = _with_identifier_input(model)
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


# TIR function kinds as relax.transform.AnnotateTIROpPattern marks them (TVM's OpPatternKind).
_INJECTIVE = 2
_OUT_ELEMWISE_FUSABLE = 4  # a convolution: elementwise functions after it fuse into it


def fuse_input_prologue() -> Any:
    """A pass fusing the elementwise preparation of the model's input (the detector's
    x / 255 - 0.5 and NCHW -> NHWC transposition) into the convolution that reads it.

    Relax fuses elementwise functions after a convolution, never before it, so the
    prepared input made a round trip through memory: on the detector full (znver5) its own
    function took 35 us of 1.85 ms, onnxruntime's Mul and Sub 40 us. Marked injective, the
    convolution joins the preparation's group; the tuned schedule inlines the preparation
    into the convolution's padded tiles (see :func:`inline_prologue`). Fused, the stem ran
    106.5 us in the model against 92 + 35 us apart, the model 11-17 us faster; smaller
    models can lose, so each database records whether to fuse (:func:`choose_prologue`).
    """
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
    libm's expf one element at a time; the polynomial vectorises. The detector's output
    function (slices, sigmoids, concatenation) went from 170 to 59 us (quarter variant, of a
    1.2 ms call). Relative error below 1e-6 (test)."""
    return _FastSigmoid()


@tvm.transform.module_pass(opt_level=0, name='FastSigmoid')
class _FastSigmoid:
    def transform_module(self, mod: tvm.IRModule, ctx: Any) -> tvm.IRModule:
        rewriter = _SigmoidRewriter(mod)
        for global_var, function in mod.functions_items():
            if isinstance(function, relax.Function):
                rewriter.builder_.update_func(global_var, rewriter.visit_expr(function))
        return rewriter.builder_.get()


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


def tuning_records(database: Path) -> int:
    """How many tuning records ``database`` holds (0 when there is none)."""
    records = database / 'database_tuning_record.json'
    if not records.is_file():
        return 0
    return sum(1 for line in records.read_text(encoding='utf-8').splitlines() if line.strip())


def tuned_workloads(database: Path) -> frozenset[str]:
    """The structural hashes of the functions ``database`` has records for."""
    records = (database / 'database_tuning_record.json').stat()
    # Asked at every build and engine start; the detector's records are 22 MB (0.2 s).
    return _tuned_workloads(database, records.st_mtime_ns, records.st_size)


@functools.lru_cache(maxsize=64)
def _tuned_workloads(database: Path, _modified_ns: int, _size: int) -> frozenset[str]:
    hashes = [json.loads(line)[0] for line in (database / 'database_workload.json')
              .read_text(encoding='utf-8').splitlines() if line.strip()]
    # A record line starts '[<workload index>,': the rest (its trace) need not be parsed.
    return frozenset(hashes[int(line[1:line.index(',')])] for line in
                     (database / 'database_tuning_record.json').read_text(encoding='utf-8')
                     .splitlines() if line.strip())


def tune_onnx(model: onnx.ModelProto, database: Path, *, input_shape: tuple[int, ...],
              target: CompileTarget, trials: int, on_trials: Callable[[int], None],
              focus: int | None = None, functions: Sequence[str] = ()) -> int:
    """MetaSchedule-tune the TIR functions; records accumulate in ``database`` (resumable).

    ``focus``: only the ``focus`` functions that could lose the most time per inference (see
    :func:`_task_headroom`; a later run spends its whole budget there, not evenly over every
    small task). ``functions``: only these, by name (where a profile, not the tuner's
    estimate, says the time is lost); ValueError names the model's functions if one is not.
    ``on_trials(n)`` is called after each batch of ``n`` measured trials (progress bars).
    Returns the number of tuning records the database then holds.
    """
    from tvm.ir.utils import derived_object
    from tvm.s_tir import meta_schedule as ms

    warned: list[bool] = []  # set once the first build error was logged

    @derived_object
    class Progress(ms.measure_callback.PyMeasureCallback):  # type: ignore[misc]
        def apply(self, task_scheduler: Any, task_id: int, measure_candidates: list[Any],
                  builder_results: list[Any], runner_results: list[Any]) -> None:
            failed = [str(r.error_msg) for r in builder_results if r.error_msg]
            if failed and not warned:  # MetaSchedule only counts them: say why, once
                _log.warning('tuning: %d of %d candidates failed to build; first error: %s',
                             len(failed), len(builder_results), failed[0].strip()[-500:])
                warned.append(True)
            on_trials(len(runner_results))

    tvm_target = tvm.target.Target(target.spec())
    mod = _lowered(model, input_shape, tvm_target)
    database.mkdir(parents=True, exist_ok=True)
    extracted = ms.relax_integration.extract_tasks(mod, tvm_target)
    chosen = list(functions) or None
    unknown = set(functions) - {task.task_name for task in extracted}
    if unknown:
        raise ValueError(f'no function {", ".join(sorted(unknown))} to tune; the model has '
                         + ', '.join(sorted(task.task_name for task in extracted)))
    if focus is not None:
        headroom = _task_headroom(ms.database.JSONDatabase(work_dir=str(database)), extracted)
        chosen = sorted(headroom, key=headroom.__getitem__, reverse=True)[:focus]
    tasks = len(chosen) if chosen is not None else len(extracted)
    # The first round visits every task once with ``per_iter`` candidates: keep it within the
    # budget, or the last tasks would get no trial at all and stay untuned.
    share = max(1, trials // max(tasks, 1))
    per_iter = max(4, min(16, share))
    with tvm_target:
        ms.relax_integration.tune_relax(
            mod, params={}, target=tvm_target, work_dir=str(database),
            max_trials_global=trials, max_trials_per_task=max(per_iter, share),
            # Seeded by the records so far: reproducible, yet a rerun does not replay the
            # previous run's random choices.
            num_trials_per_iter=per_iter, seed=tuning_records(database), op_names=chosen,
            builder=_builder(per_iter),
            # On CPUs, also schedules with each convolution's epilogue inside its tiles.
            space=cpu_design_space(target.num_cores) if target.device == 'cpu'
            else 'post-order-apply',
            measure_callbacks=[*ms.MeasureCallback.create('default'), Progress()],
            runner=_runner(target),
        )
    return tuning_records(database)


def _builder(candidates: int) -> Any:
    """MetaSchedule's builder for batches of ``candidates``."""
    from tvm.s_tir import meta_schedule as ms

    # The builder starts a fresh pool of worker processes for every batch, each importing
    # TVM: with one worker per core on a 16-core GPU host, the start alone outran the default
    # 30 s timeout and every CUDA candidate "failed to build". One worker per candidate.
    return ms.builder.LocalBuilder(max_workers=min(candidates, os.cpu_count() or 1),
                                   timeout_sec=120.0, f_build=_build_candidate)


def _build_candidate(mod: Any, target: Any, params: Any) -> Any:
    """MetaSchedule's default build of a candidate, after what our builds do to scheduled
    functions (see :func:`after_scheduling`): candidates are timed as they will run."""
    from tvm.s_tir.meta_schedule.builder.local_builder import default_build

    return default_build(after_scheduling(mod), target, params)


def _runner(target: CompileTarget) -> Any:
    """MetaSchedule's runner, timing candidates on the target's thread count."""
    from tvm.s_tir import meta_schedule as ms

    return ms.runner.LocalRunner(
        evaluator_config=ms.runner.EvaluatorConfig(number=5, repeat=3, min_repeat_ms=20,
                                                   enable_cpu_cache_flush=False),
        initializer=functools.partial(_measure_on_threads, target.num_cores))


def seed_database(model: onnx.ModelProto, database: Path, source: Path, *,
                  input_shape: tuple[int, ...], target: CompileTarget, per_function: int,
                  on_measured: Callable[[int, int], None]) -> int:
    """Give each function that ``database`` has no records for ``per_function`` records of
    ``source`` (each function's best, at least 1 % apart, see :func:`_spaced`), timed again
    here; seeded from itself, then give each convolution whose records all multiply its
    padding's zeros ``per_function`` of its best records again, skipping them (see
    :func:`skip_padding_taps_in`), timed here. Returns the records ``database`` then holds.

    ``source`` is a database tuned on another CPU of the same kind, or ``database`` itself.
    A function that has no records there but is a convolution with its input's preparation
    fused in (see :func:`fuse_input_prologue`) gets the convolution's own records, replayed
    after inlining the preparation: tuned from nothing, 96 trials of the detector's stem
    with its preparation reached 177 us; its 12 best stem records replayed so ran 104-159 us.

    A schedule replays on any CPU of the architecture, but the best one differs between
    CPUs, and the tuner's search starts from the best records it holds: on a znver5 the
    detector full ran 1.03x onnxruntime with the rocketlake records as tuned there.
    ``on_measured(done, total)``: after each batch of records was timed (progress bars).
    """
    from tvm.s_tir import meta_schedule as ms

    tvm_target = tvm.target.Target(target.spec())
    functions = [task.dispatched[0] for task in ms.relax_integration.extract_tasks(
        _lowered(model, input_shape, tvm_target), tvm_target)]
    database.mkdir(parents=True, exist_ok=True)
    have = tuned_workloads(database) if tuning_records(database) else frozenset()
    missing = [function for function in functions if _workload_hash(function) not in have]
    if missing:  # every tune run asks; the source's records need not be read otherwise
        chosen = _records_for_missing(model, missing, source, database,
                                      input_shape=input_shape, tvm_target=tvm_target,
                                      per_function=per_function)
        runs = _timed([(module, record.args_info) for _, record, module in chosen], target,
                      on_measured=on_measured)
        _commit(database, [(workload, record, seconds) for (workload, record, _), seconds
                           in zip(chosen, runs, strict=True)], tvm_target)
    if source != database:  # a new CPU: the other's records come marked or not already
        return tuning_records(database)
    twins = _padding_skip_twins(functions, database, tvm_target, per_function)
    runs = _timed([(module, record.args_info) for pair in twins for record, module in pair],
                  target, on_measured=on_measured)
    committed = []
    for ((original, _), (twin, _)), seconds, original_seconds in zip(
            twins, runs[1::2], runs[0::2], strict=True):
        if seconds and original_seconds:
            # Timed beside its original and put on the scale of the original's committed
            # time: the database's other records were timed in other runs, and this VM's
            # core speed drifts (267-280 GFLOP/s peak within a day).
            scale = float(np.mean(_floats(original.run_secs))) / float(np.mean(original_seconds))
            committed.append((twin.workload, twin, [t * scale for t in seconds]))
    _commit(database, committed, tvm_target)
    return tuning_records(database)


def _records_for_missing(model: onnx.ModelProto, missing: Sequence[Any], source: Path,
                         database: Path, *, input_shape: tuple[int, ...], tvm_target: Any,
                         per_function: int) -> list[tuple[Any, Any, Any]]:
    """(our workload, the record to time, the scheduled function) for each of ``missing``
    from ``source`` (see :func:`seed_database`)."""
    from tvm.s_tir import meta_schedule as ms

    theirs = _TuningRecords(source)
    ours = ms.database.JSONDatabase(work_dir=str(database))
    chosen = []
    alone = None  # the functions of the model lowered without the preparation fused in
    for function in missing:
        index, core = theirs.workload_index(function), None
        if index is not None and not theirs.best(index, 1):
            index = None  # a workload committed without a record measured
        if index is None and _prologue_length(_root_block_names(function)):
            if alone is None:
                alone = [task.dispatched[0] for task in ms.relax_integration.extract_tasks(
                    _lowered(model, input_shape, tvm_target, prologue=False), tvm_target)]
            core = _convolution_alone(function, alone)
            index = None if core is None else theirs.workload_index(core)
        if index is None:
            continue
        workload = ours.commit_workload(function)
        for _, line in _spaced(theirs.best(index, len(theirs.lines)), per_function):
            # A trace is read against the function it was tuned for.
            record = ms.database.TuningRecord.from_json(
                json.loads(theirs.lines[line])[1],
                workload if core is None else ms.database.Workload(core))
            schedule = tvm.s_tir.Schedule(function)
            if core is not None:
                inline_prologue(schedule)
            record.trace.apply_to_schedule(schedule, remove_postproc=False)
            if core is not None:  # the trace now starts with the inlining; input as fused
                record = ms.database.TuningRecord(
                    schedule.trace, workload, None, tvm_target,
                    [ms.arg_info.ArgInfo.from_prim_func(function['main'])[0],
                     *record.args_info[1:]])
            chosen.append((workload, record, schedule.mod))
    return chosen


def _padding_skip_twins(functions: Sequence[Any], database: Path, tvm_target: Any,
                        per_function: int) -> list[tuple[tuple[Any, Any], tuple[Any, Any]]]:
    """((record, scheduled function) as committed, (the same marked to skip its padding's
    taps, scheduled)) for the ``per_function`` best records (1 % apart) of each of
    ``functions`` whose records in ``database`` are all unmarked, where marking guards
    anything (see :func:`skip_padding_taps_in`)."""
    from tvm.s_tir import meta_schedule as ms

    if not tuning_records(database):
        return []
    ours = _TuningRecords(database)
    twins = []
    for function in functions:
        index = ours.workload_index(function)
        if index is None or any(SKIP_PADDING_TAPS in line for line, (workload_index, _) in
                                zip(ours.lines, ours.timed, strict=True)
                                if workload_index == index):
            continue
        workload = ms.database.Workload(function)
        for _, line in _spaced(ours.best(index, len(ours.lines)), per_function):
            original = ms.database.TuningRecord.from_json(json.loads(ours.lines[line])[1],
                                                          workload)
            schedule = tvm.s_tir.Schedule(function)
            original.trace.apply_to_schedule(schedule, remove_postproc=False)
            unmarked = schedule.mod
            try:
                update = schedule.get_sblock(_CONV_UPDATE)
            except tvm.s_tir.ScheduleError:
                break  # no convolution, or one whose reduction was not split from its init
            schedule.annotate(update, SKIP_PADDING_TAPS, 1)
            if skip_padding_taps_in(schedule.mod['main']).same_as(schedule.mod['main']):
                continue  # no bound decided outside a channel reduction: the same code
            twin = ms.database.TuningRecord(schedule.trace, workload, None, tvm_target,
                                            original.args_info)
            twins.append(((original, unmarked), (twin, schedule.mod)))
    return twins


def _floats(values: Any) -> list[float]:
    return [float(value) for value in values]


def _timed(candidates: Sequence[tuple[Any, Any]], target: CompileTarget, *,
           on_measured: Callable[[int, int], None]) -> list[list[float] | None]:
    """The run times here (seconds) of each (scheduled function, its record's argument
    info); None where it failed to build or run."""
    from tvm.s_tir import meta_schedule as ms

    tvm_target = tvm.target.Target(target.spec())
    seconds: list[list[float] | None] = []
    batch = 16  # one pool of build workers a batch: its start costs seconds
    for first in range(0, len(candidates), batch):
        part = candidates[first:first + batch]
        built = _builder(len(part)).build(
            [ms.builder.BuilderInput(module, tvm_target) for module, _ in part])
        runs = iter(_runner(target).run([
            ms.runner.RunnerInput(result.artifact_path, device_type=target.device,
                                  args_info=args_info)
            for result, (_, args_info) in zip(built, part, strict=True)
            if not result.error_msg]))
        for result in built:
            run = None if result.error_msg else next(runs).result()
            seconds.append(None if run is None or run.error_msg else _floats(run.run_secs))
        on_measured(first + len(part), len(candidates))
    return seconds


def _commit(database: Path, timed: Sequence[tuple[Any, Any, list[float] | None]],
            tvm_target: Any) -> None:
    """Commit each (workload, record, seconds) that ran to ``database`` with those times."""
    from tvm.s_tir import meta_schedule as ms

    ours = ms.database.JSONDatabase(work_dir=str(database))
    failed = 0
    for workload, record, seconds in timed:
        if seconds is None:
            failed += 1
            continue
        ours.commit_tuning_record(ms.database.TuningRecord(
            record.trace, ours.commit_workload(workload.mod), seconds, tvm_target,
            record.args_info))
    if failed:
        _log.warning('seeding %s: %d records failed to build or run here', database.name,
                     failed)


def _convolution_alone(fused: Any, alone: Sequence[Any]) -> Any | None:
    """Which of ``alone`` is ``fused`` without its input's preparation: the same blocks
    after it, the same weights and output (the data input differs); None if none is."""
    from tvm.s_tir import meta_schedule as ms

    names = _root_block_names(fused)
    rest = names[_prologue_length(names):]
    params = [str(info) for info in ms.arg_info.ArgInfo.from_prim_func(fused['main'])[1:]]
    for function in alone:
        if (_root_block_names(function) == rest and params ==
                [str(info) for info in ms.arg_info.ArgInfo.from_prim_func(function['main'])[1:]]):
            return function
    return None


# The parallel extent the default CPU rules give (MetaSchedule's ``max_jobs_per_core``), so
# schedules from both spaces split their outer loops alike.
_JOBS_PER_CORE = 16
_CONV_LOOPS = 7  # n, y, x, channel; kernel y, kernel x, input channel


def cpu_design_space(num_cores: int) -> Any:
    """MetaSchedule's default CPU design space joined with :func:`epilogue_in_tile`.

    The default space for a fused convolution (convolution, then bias, ReLU, residual
    addition) also holds schedules that write the whole convolution to a scratch buffer and
    make a second pass over it for the epilogue. On the detector full's stride-2 16->32
    convolution every one of the tuner's best records after 440 trials was of that kind
    (247 us alone, 254 us in the model; onnxruntime's kernel 217 us). With the epilogue
    computed right after each output tile, while it is still in cache, 192 trials reached
    214 us (220 in the model). Joined, not replacing: the tuner keeps every schedule it had.
    """
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


def _prologue_length(names: Sequence[str]) -> int:
    """How many of a function's root blocks (``names``, in order) prepare its convolution's
    input (see :func:`fuse_input_prologue`): those before the padding, or before the
    convolution where it has none. 0 for a function without a convolution."""
    if 'conv2d_nhwc' not in names:
        return 0
    return names.index('pad_temp' if 'pad_temp' in names else 'conv2d_nhwc')


def _workload_hash(function: Any) -> str:
    """A function's structural hash as databases name its workload."""
    return str(tvm_ffi.structural_hash(function))


def _prologue_workloads(tasks: Sequence[Any]) -> set[str]:
    """The workload hashes of the tuning ``tasks`` that are a convolution with its input's
    preparation fused in."""
    return {_workload_hash(task.dispatched[0]) for task in tasks
            if _prologue_length(_root_block_names(task.dispatched[0]))}


def _root_block_names(function: Any) -> list[str]:
    schedule = tvm.s_tir.Schedule(function)
    return [schedule.get(block).name_hint
            for block in schedule.get_child_blocks(schedule.get_sblock('root'))]


def inline_prologue(sch: Any) -> None:
    """Inline a fused input preparation into what reads it (the padded input): computed
    where each tile's input is gathered, not as a pass over the whole image."""
    blocks = sch.get_child_blocks(sch.get_sblock('root'))
    for block in blocks[:_prologue_length([sch.get(block).name_hint for block in blocks])]:
        sch.compute_inline(block)


def _measure_on_threads(count: int) -> None:
    """Runs first in each MetaSchedule measuring process: candidates are timed on the lane's
    thread count. The process inherits TVM_NUM_THREADS (all usable CPUs, see
    :func:`_bound_tvm_threads`): a 1-core target's candidates were timed on two threads and
    picked for two (a detector stem: 214 us in the tuner, 356 us on one thread)."""
    os.environ['TVM_NUM_THREADS'] = str(count)


def _best_run_seconds(records: Any, function: Any) -> float | None:
    """The best measured run of a TIR function in tuning ``records`` (mean of its repeats)."""
    if not records.has_workload(function):
        return None
    best = records.get_top_k(records.commit_workload(function), 1)
    if not best or not best[0].run_secs:
        return None
    runs = [float(seconds) for seconds in best[0].run_secs]
    mean = sum(runs) / len(runs)
    return mean if mean > 0 else None  # a failed run records zeros


def _task_seconds(records: Any, task: Any) -> float:
    """Seconds a tuning task's function costs per inference: its best measured run in the
    tuning ``records`` times its call count, or, before it has a record, its work at
    100 GFLOP/s.

    Measured time, not work, finds what to tune next: the detector quarter's 3-channel stem
    has less work than its 8-channel convolutions (4.3 vs 5.6 MFLOP) and took twice as long
    (195 vs 102 us); 200 trials ranked this way took that variant from 1.19 to 0.76 ms.
    """
    from tvm.s_tir.analysis import estimate_tir_flops

    function = task.dispatched[0]
    best = _best_run_seconds(records, function)
    if best is None:
        best = float(estimate_tir_flops(function)) / 1e11
    return float(task.weight * best)


def _task_headroom(records: Any, tasks: Sequence[Any]) -> dict[str, float]:
    """Seconds per inference each tuning task's function could still lose: its time
    (:func:`_task_seconds`) minus its work at the best rate any measured function of the
    model reaches in ``records``; a function without a record keeps its whole estimate.

    Where the time goes is not where it can shrink: after 280 trials the detector's 32->32
    convolutions (the most time) ran at 180 GFLOP/s, the half variant's 16->32 one at 66.
    """
    from tvm.s_tir.analysis import estimate_tir_flops

    seconds = {task.task_name: _task_seconds(records, task) for task in tasks}
    work = {task.task_name: task.weight * float(estimate_tir_flops(task.dispatched[0]))
            for task in tasks}
    measured = {task.task_name for task in tasks
                if _best_run_seconds(records, task.dispatched[0]) is not None}
    rate = max((work[name] / seconds[name] for name in measured), default=0.0)
    return {name: seconds[name] - (work[name] / rate if name in measured else 0.0)
            for name in seconds}


class _TuningRecords:
    """A MetaSchedule JSON database as its files' lines, to build with chosen records only."""

    def __init__(self, database: Path) -> None:
        self.workloads = (database / 'database_workload.json').read_text(encoding='utf-8')
        self.lines = [line for line in (database / 'database_tuning_record.json')
                      .read_text(encoding='utf-8').splitlines() if line.strip()]
        self.timed = [_workload_and_mean_seconds(line) for line in self.lines]

    def workload_index(self, function: Any) -> int | None:
        from tvm.s_tir import meta_schedule as ms

        for index, line in enumerate(self.workloads.splitlines()):
            if tvm_ffi.structural_equal(ms.database.Workload.from_json(json.loads(line)).mod,
                                       function):
                return index
        return None

    def best(self, workload: int, count: int) -> list[tuple[float, int]]:
        """(mean seconds, line number) of the workload's ``count`` best measured records."""
        return sorted((seconds, number) for number, (index, seconds) in enumerate(self.timed)
                      if index == workload and seconds is not None)[:count]

    def best_numbers(self, before: int | None = None) -> dict[int, int]:
        """Each workload's best record: its line number (among the first ``before`` lines)."""
        best: dict[int, tuple[float, int]] = {}
        for number, (index, seconds) in enumerate(self.timed[:before]):
            if seconds is not None and (index not in best or seconds < best[index][0]):
                best[index] = (seconds, number)
        return {index: number for index, (_, number) in best.items()}

    def write_trial(self, directory: Path, workload: int, line: int) -> None:
        """Only what a build reads: ``line`` for ``workload``, every other one's best record
        (the detector's whole 22 MB database, parsed per build, took 8 s of a 20 s build)."""
        self._write(directory, sorted({**self.best_numbers(), workload: line}.values()))

    def write(self, directory: Path, *, drop: set[int]) -> None:
        self._write(directory, [number for number in range(len(self.lines))
                                if number not in drop])

    def _write(self, directory: Path, numbers: list[int]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / 'database_workload.json').write_text(self.workloads, encoding='utf-8')
        partial = directory / '.database_tuning_record.json.tmp'
        partial.write_text(''.join(f'{self.lines[number]}\n' for number in numbers),
                           encoding='utf-8')
        partial.replace(directory / 'database_tuning_record.json')


def _workload_and_mean_seconds(line: str) -> tuple[int, float | None]:
    """A record line's workload index and mean measured seconds (None: it failed)."""
    index, record = json.loads(line)
    runs = record[1]
    ok = bool(runs) and min(runs) > 0 and max(runs) < 1e9  # failures record 0 or 1e10
    return int(index), (sum(runs) / len(runs) if ok else None)


def rank_in_model(model: onnx.ModelProto, database: Path, *, input_shape: tuple[int, ...],
                  target: CompileTarget, candidates: int, min_share: float = 0.05,
                  tuned_from: int | None = None,
                  on_build: Callable[[], None] = lambda: None) -> list[str]:
    """Keep, for each function that costs a noticeable share of the model, the record of its
    ``candidates`` best in ``database`` (the tuner's ranking) with which the whole model runs
    fastest: records the tuner ranked above that one are dropped. Returns a line per function.
    Candidates are at least 1 % apart in the tuner's times: a tuning run leaves dozens of
    near-copies of its best schedule (the detector's 16->32 convolution: twelve records
    within 247-251 us), and the one to find may be an older, different schedule (266.7 us
    in the tuner, 18 us faster in the model). Functions under ``min_share`` of the model's
    time are left alone: they cannot move it past the timing noise, and each candidate is a
    whole build. ``tuned_from``: the records the database held before a tuning run; each
    function's best of those is a candidate too (200 trials took the detector's 32->32
    convolution from 493.7 to 403.7 us in the tuner, and its six best new records all made
    the model slower than the old one).

    The tuner times a function alone; in the model it finds other caches and inputs. On the
    detector full, the tuner's second-best record of a 32->32 convolution (495.9 vs 493.7 us)
    made the model 158 us slower, and a stride-2 convolution's third (266.6 vs 228.9 us)
    made it 8 us faster. Each candidate is timed as the function's own calls inside the
    model (see :func:`_seconds_taking_turns`), not as whole calls: those moved by up
    to 0.15 ms between one function's candidates and the next's on the detector full, more
    than the candidates differ.
    """
    import tempfile

    from tvm.s_tir import meta_schedule as ms

    tvm_target = tvm.target.Target(target.spec())
    tasks = ms.relax_integration.extract_tasks(_lowered(model, input_shape, tvm_target),
                                               tvm_target)
    tuned = ms.database.JSONDatabase(work_dir=str(database))
    seconds = {task.task_name: _task_seconds(tuned, task) for task in tasks}
    heavy = [task for task in sorted(tasks, key=lambda t: -seconds[t.task_name])
             if seconds[task.task_name] >= min_share * sum(seconds.values())]
    # Tuning only appends lines and ranking drops some: the earlier best, by content.
    before = _TuningRecords(database)
    previous = ({} if tuned_from is None else
                {index: before.lines[number]
                 for index, number in before.best_numbers(tuned_from).items()})
    report = []
    for task in heavy:
        records = _TuningRecords(database)
        workload = records.workload_index(task.dispatched[0])
        if workload is None:
            continue
        ranked = records.best(workload, len(records.lines))
        # The function's best record from before the run, by its line in this file.
        earlier = {line for _, line in ranked if records.lines[line] == previous.get(workload)}
        best = sorted({*_spaced(ranked, candidates),
                       *[entry for entry in ranked if entry[1] in earlier]})
        if len(best) < 2:
            continue
        with tempfile.TemporaryDirectory(prefix='rank-') as scratch:
            libraries = []
            for rank, (_, line) in enumerate(best):
                trial = Path(scratch) / str(rank)
                records.write_trial(trial, workload, line)
                libraries.append(trial / 'model.so')
                # The bytecode VM: it reports each kernel call to an instrument.
                compile_onnx(model, libraries[-1], input_shape=input_shape, target=target,
                             databases=[trial], exec_mode='bytecode')
                on_build()
            model_seconds = _seconds_taking_turns(libraries, input_shape, target,
                                                  function=task.task_name)
        winner = min(range(len(best)), key=model_seconds.__getitem__)
        # Keep the tuner's choice unless another beats it by more than the timing noise.
        if model_seconds[winner] > model_seconds[0] * 0.995:
            winner = 0
        records.write(database, drop={number for _, number in
                                      ranked[:ranked.index(best[winner])]})
        report.append(f'{task.task_name}: ' + ', '.join(
            f'{tuner * 1e6:.1f} us alone -> {model * 1e6:.1f} us in the model'
            + (' (before the run)' if line in earlier else '')
            + (' (kept)' if rank == winner else '')
            for rank, ((tuner, line), model) in enumerate(zip(best, model_seconds,
                                                              strict=True))))
    if target.device == 'cpu' and _prologue_workloads(tasks) & tuned_workloads(database):
        report.append(choose_prologue(model, database, input_shape=input_shape, target=target,
                                      on_build=on_build))
    if target.serial_capable():
        report.append(choose_loops(model, database, input_shape=input_shape, target=target,
                                   on_build=on_build))
    return report


def _spaced(ranked: list[tuple[float, int]], count: int,
            apart: float = 1.01) -> list[tuple[float, int]]:
    """The first ``count`` of ``ranked`` (seconds, line) that are each at least ``apart``
    times the seconds of the one before."""
    chosen: list[tuple[float, int]] = []
    for seconds, line in ranked:
        if len(chosen) < count and (not chosen or seconds >= chosen[-1][0] * apart):
            chosen.append((seconds, line))
    return chosen


def _seconds_taking_turns(libraries: Sequence[Path], input_shape: tuple[int, ...],
                          target: CompileTarget, function: str | None = None,
                          rounds: int = 15, seconds_per_turn: float = 0.03) -> list[float]:
    """Median seconds per call of each library's model, the libraries taking turns (each
    first in turn) so that all see the same machine state. With ``function`` (a task name),
    only that function's calls inside each model run count (a bytecode VM's instrument)."""
    names = {function, f'{function}_prepacked'}  # as SplitLayoutRewritePreproc renames it
    device = tvm.cuda(0) if target.device == 'cuda' else tvm.cpu(0)
    spent = [0.0, 0.0]  # this call's seconds in the function so far; when its last call began

    def instrument(_function: Any, name: str, before: bool, _result: Any, *_args: Any) -> int:
        if name in names:
            if target.device == 'cuda':
                device.sync()  # kernels are launched asynchronously
            if before:
                spent[1] = time.perf_counter()
            else:
                spent[0] += time.perf_counter() - spent[1]
        return 0  # VMInstrumentReturnKind.NO_OP: run the call as usual

    engines = [TvmEngine(library, device=target.device, input_shape=input_shape,
                         threads=target.num_cores,
                         instrument=None if function is None else instrument)
               for library in libraries]
    inputs = np.random.default_rng(0).uniform(0, 255, input_shape).astype(np.float32)
    start = time.perf_counter()
    engines[0].run(inputs)
    calls = max(1, int(seconds_per_turn / (time.perf_counter() - start)))
    times: list[list[float]] = [[] for _ in engines]
    for turn in range(rounds):
        for index in [(turn + offset) % len(engines) for offset in range(len(engines))]:
            engines[index].run(inputs)  # the first call after another library's warms up
            for _ in range(calls):
                spent[0] = 0.0
                start = time.perf_counter()
                engines[index].run(inputs)
                times[index].append(time.perf_counter() - start if function is None
                                    else spent[0])
    if not all(min(each) > 0 for each in times):
        raise RuntimeError(f'{function} was not called in the model (a bytecode build?)')
    return [float(np.median(each)) for each in times]


def choose_loops(model: onnx.ModelProto, database: Path, *, input_shape: tuple[int, ...],
                 target: CompileTarget, on_build: Callable[[], None] = lambda: None) -> str:
    """Build the model with ``database``'s records as tuned (parallel outer loops) and with
    those loops serial, time whole calls of both taking turns, and record in the database
    which the model's builds use (see :func:`serial_loops`); returns a line for the report.
    Whole calls, each library's back to back: timed kernel by kernel (the instrument adds a
    Python call between kernels), the two did not differ the way whole calls did."""
    parallel_seconds, serial_seconds = _two_builds(
        model, database, input_shape=input_shape, target=target, on_build=on_build,
        builds=((False, None), (True, None)))
    serial = serial_seconds < parallel_seconds * 0.995  # beyond the timing noise
    _write_build_option(database, 'serial_loops', serial)
    return (f'loops: parallel {parallel_seconds * 1e3:.3f} ms, serial '
            f'{serial_seconds * 1e3:.3f} ms a call: {"serial" if serial else "parallel"} kept')


def choose_prologue(model: onnx.ModelProto, database: Path, *, input_shape: tuple[int, ...],
                    target: CompileTarget, on_build: Callable[[], None] = lambda: None) -> str:
    """Build the model with the input's preparation fused into the first convolution (see
    :func:`fuse_input_prologue`) and apart, time whole calls taking turns, and record in
    the database which its builds use. Fused, the detector full and half ran 12 and 22 us
    faster (znver5); the detector quarter 7 us and the classifiers 0.2-0.9 us slower."""
    fused_seconds, apart_seconds = _two_builds(
        model, database, input_shape=input_shape, target=target, on_build=on_build,
        builds=((None, True), (None, False)))
    fused = not apart_seconds < fused_seconds * 0.995  # beyond the timing noise
    _write_build_option(database, 'input_prologue', fused)
    return (f'input preparation: fused {fused_seconds * 1e3:.3f} ms, apart '
            f'{apart_seconds * 1e3:.3f} ms a call: {"fused" if fused else "apart"} kept')


def _two_builds(model: onnx.ModelProto, database: Path, *, input_shape: tuple[int, ...],
                target: CompileTarget, on_build: Callable[[], None],
                builds: tuple[tuple[bool | None, bool | None], ...]) -> list[float]:
    """Seconds a whole call of the model built with ``database`` and each of ``builds``
    ((serial, prologue) as :func:`compile_onnx` takes them), timed taking turns."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix='choice-') as scratch:
        libraries = [Path(scratch) / f'{number}.so' for number in range(len(builds))]
        for library, (serial, prologue) in zip(libraries, builds, strict=True):
            compile_onnx(model, library, input_shape=input_shape, target=target,
                         databases=[database], serial=serial, prologue=prologue)
            on_build()
        return _seconds_taking_turns(libraries, input_shape, target, rounds=30)


def serial_loops(mod: Any) -> Any:
    """``mod`` with every parallel loop of its TIR functions made serial.

    MetaSchedule's CPU schedules keep a parallel outer loop for a one-core target too, and
    each of its iterations then allocates its scratch tiles (padded input, accumulator) from
    TVM's workspace pool; in a serial loop they are allocated once per kernel and LLVM sees
    the whole loop nest. Which runs faster depends on the schedules (whole calls: detector
    half 1.029 -> 1.016 ms, classifier quarter 60 -> 54 us at batch 4, detector quarter
    0.542 -> 0.574 ms), so each database records its choice (:func:`choose_loops`).
    A TVMScript round trip: TIR has no Python mutator, and ``T.parallel(`` only ever starts
    a parallel loop there.
    """
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
    loop longer.

    The detector's stem reads the NCHW image into a channels-last padded buffer (242 x 322
    x 3): a vector of three channels gathered from three planes per pixel. Written
    channel-major, each row is a contiguous 322-wide copy, and the convolution, which
    broadcasts one input value per tap, reads it as well: the detector full's stem alone
    107.7 -> 83.4 us, outputs identical.
    """
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

    A 3x3 convolution with padding 1 reads zeros at the image border: 3.8 % of the 64->64
    one's taps on 30x40, 1.9 % of the 32->32 one's on 60x80. onnxruntime's kernels skip
    them; ours multiplied by the zeros, which was the whole of the gap left on those
    convolutions (327 vs 317 us, 328 vs 322, znver5), both near this core's FMA peak
    otherwise. The padding's condition (``pad_temp = if_then_else(inside, x, 0)``, or the
    same expression inlined into the product) is read at the accumulation's indices, split
    into its bounds, and each bound tested once around the loops it does not depend on,
    where a reduction loop is left inside the test; a bound that only an inner loop decides
    (a tile spanning the border) is left to the multiplication. Outputs are identical: only
    additions of exact zeros are skipped.

    Only where the schedule asks: a test among a tile's register loops can stop LLVM
    keeping the accumulators in registers (the detector quarter's 64->64 convolution ran
    38 -> 102 us with it, the 32->32 ones above 0.2-1.0 % faster), so skipping is a choice
    the tuner times (see :func:`epilogue_in_tile`) and seeding gives existing records a
    skipping twin (see :func:`seed_database`).
    """
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


_BUILD_OPTIONS = 'build_options.json'


def _write_build_option(database: Path, name: str, value: bool) -> None:
    options = _build_options(database)
    options[name] = value
    (database / _BUILD_OPTIONS).write_text(json.dumps(options, sort_keys=True) + '\n',
                                           encoding='utf-8')


def _build_options(database: Path) -> dict[str, Any]:
    path = database / _BUILD_OPTIONS
    if not path.is_file():
        return {}
    try:
        options = json.loads(path.read_text(encoding='utf-8'))
    except (OSError, ValueError) as err:
        raise ModelLoadError(f'Cannot read {path}: {err}') from None
    if not isinstance(options, dict):
        raise ModelLoadError(f'{path}: not a JSON object')
    return options


def _build_option(database: Path, name: str, default: bool) -> bool:
    value = _build_options(database).get(name, default)
    if not isinstance(value, bool):
        raise ModelLoadError(f'{database / _BUILD_OPTIONS}: {name} must be true or false, '
                             f'not {value!r}')
    return value


def builds_serial(databases: Sequence[Path], target: CompileTarget) -> bool:
    """Whether a build with ``databases`` for ``target`` makes its loops serial."""
    return bool(databases) and target.serial_capable() and database_serial_loops(databases[0])


def database_serial_loops(database: Path) -> bool:
    """Whether builds with ``database`` first make their loops serial (see
    :func:`choose_loops`); False where it has not been chosen."""
    return _build_option(database, 'serial_loops', False)


def builds_prologue(databases: Sequence[Path]) -> bool:
    """Whether a build with ``databases`` fuses the input's preparation into the first
    convolution where they have records for that function (see :func:`choose_prologue`);
    True where the first has not chosen, False without databases."""
    return bool(databases) and _build_option(databases[0], 'input_prologue', True)


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
    _sidecar(library).write_text(file_sha256(partial) + '\n', encoding='utf-8')
    partial.replace(library)  # atomic: concurrent builders never see a half-written library


def tuned_module(model: onnx.ModelProto, input_shape: tuple[int, ...], tvm_target: Any,
                 databases: Sequence[Path], *, prologue: bool = True) -> Any:
    """The lowered Relax module where every TIR function found in one of ``databases`` has
    its tuned schedule, from the first that has it (a scheduled function is marked
    'tirx.is_scheduled' and no longer matches the later ones). Weight repacking that a
    schedule asks for becomes its own function, folded into new constants here, so the
    packing costs nothing per inference. ``prologue``: the input's preparation fused into
    the first convolution where ``databases`` have records for that function."""
    mod = _scheduled(_lowered(model, input_shape, tvm_target, prologue=prologue), tvm_target,
                     databases)
    if prologue and any(_prologue_length(_root_block_names(function))
                        for function in mod.functions.values()
                        if isinstance(function, tvm.tirx.PrimFunc)
                        and 'tirx.is_scheduled' not in (function.attrs or {})):
        # No records for it (databases from before that fusion, or none): the functions
        # those databases were tuned for.
        mod = _scheduled(_lowered(model, input_shape, tvm_target, prologue=False), tvm_target,
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


class ModelStore:
    """Holds the compiled modules of every (model, variant, batch, device) in one process.

    Verifies each ONNX file against the manifest, compiles it on first use (or reuses the
    cache) with the committed tuning database of its target where one exists, loads it and
    runs one warm-up inference. It never tunes by itself: ``edge-perception tune`` does.
    """

    @classmethod
    def of(cls, model_dir: Path) -> ModelStore:
        """The store of ``model_dir``'s manifest, compiling into the default cache."""
        return cls(Manifest.load(model_dir), cache_dir=default_cache_dir())

    def __init__(self, manifest: Manifest, *, cache_dir: Path, use_tuning: bool = True) -> None:
        self.manifest = manifest
        self.cache_dir = cache_dir
        self.use_tuning = use_tuning  # False: ignore the databases (benchmarks compare both)
        self._engines: dict[tuple[str, str, int, str, int, str, Part | None], TvmEngine] = {}
        self._static: dict[tuple[str, str, int], onnx.ModelProto] = {}
        self._lock = threading.Lock()
        self._warned: set[tuple[str, str | None]] = set()  # (target, source): once each

    def tuning_database(self, model: str, variant: str, *, batch: int,
                        target: CompileTarget) -> Path:
        """Where tuning records of this model file, batch size and target are committed."""
        digest = self.manifest.variant(model, variant).sha256[:12]
        return (self.manifest.root / TUNING_DIR / target.tag()
                / f'{model}-{variant}-b{batch}-{digest}')

    def applied_databases(self, model: str, variant: str, *, batch: int,
                          target: CompileTarget) -> list[Path]:
        """The databases builds apply, in order: this target's, then a borrowed one (see
        :meth:`borrowed_database`) where this target's lacks records for a function that one
        has (a focused tuning run covers only the heaviest); [] = untuned, and always []
        when use_tuning is off.

        A record is a schedule (tiling, loop order, vectorised loops) for one TIR function;
        it replays on any CPU of the architecture. Measured: the detector tuned on znver5 runs
        10-10.5 ms on a znver3 with that database and 234 ms untuned.
        """
        if not self.use_tuning:
            return []
        own = self.tuning_database(model, variant, batch=batch, target=target)
        borrowed = self.borrowed_database(model, variant, batch=batch, target=target)
        has_own = tuning_records(own) > 0
        if has_own and borrowed is not None and tuned_workloads(own) >= tuned_workloads(borrowed):
            borrowed = None  # nothing to fill in
        self._say_once_what_this_target_lacks(target, borrowed, has_own)
        return [*([own] if has_own else []), *([borrowed] if borrowed is not None else [])]

    def _say_once_what_this_target_lacks(self, target: CompileTarget, borrowed: Path | None,
                                         has_own: bool) -> None:
        """One log line per target and source: what its builds borrow (or that they are
        untuned) and the command that gives it a database of its own."""
        key = (target.tag(), None if borrowed is None else borrowed.parent.name)
        if key in self._warned or (has_own and borrowed is None):
            return
        self._warned.add(key)
        if target.device == 'cuda':
            command = 'edge-perception tune --device cuda'
        else:
            command = 'edge-perception tune --new-cpu' + (
                f' --threads {target.num_cores}' if target.num_cores != 1 else '')
        where = 'here' if target.cpu.runs_here() else f'on the {target.cpu.arch} machine'
        fix = f'`{command}` {where} gives it its own'
        if borrowed is not None and has_own:
            _log.warning('%s: schedules its database lacks come from %s (`%s` %s fills them)',
                         target.tag(), borrowed.parent.name, command, where)
        elif borrowed is not None:
            variants = sum(len(entry.variants) for entry in self.manifest.models.values())
            _log.warning('%s has no tuning database: builds borrow %s (%s, about %d minutes '
                         'on 2 cores)', target.tag(), borrowed.parent.name, fix,
                         NEW_CPU_MINUTES_PER_VARIANT * variants)
        else:  # e.g. a CPU kind none was tuned on: the detector full takes 167 ms, not 1.9
            _log.warning('%s has no tuning database: untuned builds run 3-100x slower (%s)',
                         target.tag(), fix)

    def borrowed_database(self, model: str, variant: str, *, batch: int,
                          target: CompileTarget, any_arch: bool = False) -> Path | None:
        """The database of this model file, batch and layout that fills in for ``target``'s
        (the fullest: most functions, then most records): where it has no records, one
        tuned on this CPU for another number of cores, else on another CPU (or GPU) of the
        same kind for ``target``'s; where it has
        some, the other way round (its gaps, the functions a focused run left, were filled
        from another CPU's records for its cores before there were others); with
        ``any_arch``, last a CPU of another architecture (to seed from: its records are timed
        here); None where there is none.

        A schedule's register tile and loop order, most of its speed, are the CPU's; the
        cores change how its outer loops are shared out. Measured on the znver5 with two
        threads, taking turns: detector full 1.04 ms with its own one-core records against
        1.33 ms with rocketlake's two-core ones (half 0.36 vs 0.52, quarter 0.24 vs 0.43);
        classifier full 1.88 ms untuned, 0.026 ms with its one-core records.
        """
        own = self.tuning_database(model, variant, batch=batch, target=target)
        patterns = [target.tag(cores='*'), target.tag(cpu='*')]
        if tuning_records(own):
            patterns.reverse()
        if any_arch and target.device == 'cpu':
            patterns.append(f'llvm-*-c{target.num_cores}-{LOWERING}')
        for pattern in patterns:
            # Fullest: the most functions covered, then the most records.
            fullness = {db: (len(tuned_workloads(db)), tuning_records(db)) for db in
                        (self.manifest.root / TUNING_DIR).glob(f'{pattern}/{own.name}')
                        if db != own and tuning_records(db) > 0}
            if fullness:
                return max(fullness, key=fullness.__getitem__)
        return None

    def library_path(self, model: str, variant: str, *, batch: int,
                     target: CompileTarget, part: Part | None = None) -> Path:
        """Cache path keyed by model hash, target, TVM version, batch, tuning records and,
        for a sub-model, its cut tensors."""
        entry = self.manifest.variant(model, variant)
        databases = self.applied_databases(model, variant, batch=batch, target=target)
        tuned = ','.join(file_sha256(database / 'database_tuning_record.json')
                         for database in databases) or 'untuned'
        if builds_serial(databases, target):
            tuned += '|serial'
        if databases and not builds_prologue(databases):
            tuned += '|prologue apart'
        key = hashlib.sha256(
            f'{entry.sha256}|{target.cache_key()}|{tvm.__version__}|{LOWERING}|{CPU_VM_EXEC}'
            f'|{AFTER_SCHEDULING}|{batch}|{tuned}|{part}'
            .encode()
        ).hexdigest()[:20]
        name = f'{model}-{variant}-b{batch}' + ('' if part is None else '-part')
        return self.cache_dir / f'{name}-{key}.so'

    def is_tuned(self, model: str, variant: str, *, batch: int, target: CompileTarget) -> bool:
        """Whether builds apply a tuning database (see :meth:`applied_databases`)."""
        return bool(self.applied_databases(model, variant, batch=batch, target=target))

    def verified_onnx(self, model: str, variant: str) -> onnx.ModelProto:
        """The manifest's ONNX file, refused unless present and matching its SHA-256."""
        entry = self.manifest.variant(model, variant)
        onnx_path = self.manifest.path(model, variant)
        if not onnx_path.is_file():
            raise ModelLoadError(f'Model file {onnx_path} is missing')
        if file_sha256(onnx_path) != entry.sha256:
            raise ModelLoadError(f'Model file {onnx_path} does not match its manifest SHA-256')
        return read_onnx(onnx_path)

    def static_onnx(self, model: str, variant: str, batch: int) -> onnx.ModelProto:
        """The verified model at a static batch, every tensor's shape inferred (cached)."""
        key = (model, variant, batch)
        if key not in self._static:
            self._static[key] = with_static_input(self.verified_onnx(model, variant),
                                                  self.input_shape(model, batch))
        return self._static[key]

    def cut_points(self, model: str, variant: str) -> list[str]:
        """Tensors at which the model can be split into chained sub-models."""
        return cut_tensors(self.static_onnx(model, variant, 1))

    def parts(self, model: str, variant: str, cuts: Sequence[str]) -> list[Part]:
        """The sub-models between consecutive ``cuts`` (from the model input to its output)."""
        graph = self.static_onnx(model, variant, 1).graph
        bounds = [graph.input[0].name, *cuts, graph.output[0].name]
        return list(itertools.pairwise(bounds))

    def build(self, model: str, variant: str, *, batch: int, target: CompileTarget,
              part: Part | None = None) -> Path:
        """Compile unless a cached library exists; returns the library path."""
        onnx_model = self.verified_onnx(model, variant)
        library = self.library_path(model, variant, batch=batch, target=target, part=part)
        if library.exists() and not _intact(library):
            # Never loaded: rebuilt from the verified ONNX file instead.
            _log.warning('%s does not match its SHA-256 record: rebuilding it', library)
            library.unlink()
        if not library.exists():
            if part is not None:
                onnx_model = sub_model(self.static_onnx(model, variant, batch), *part)
            compile_onnx(onnx_model, library,
                         input_shape=self.part_input_shape(model, variant, batch, part),
                         target=target,
                         databases=self.applied_databases(model, variant, batch=batch,
                                                          target=target))
        return library

    def tune(self, model: str, variant: str, *, batch: int, target: CompileTarget,
             trials: int, on_trials: Callable[[int], None], focus: int | None = None,
             functions: Sequence[str] = ()) -> int:
        """Add ``trials`` MetaSchedule trials to the committed database; returns its records."""
        return tune_onnx(self.verified_onnx(model, variant),
                         self.tuning_database(model, variant, batch=batch, target=target),
                         input_shape=self.input_shape(model, batch), target=target,
                         trials=trials, on_trials=on_trials, focus=focus, functions=functions)

    def seed(self, model: str, variant: str, *, batch: int, target: CompileTarget,
             source: Path, per_function: int,
             on_measured: Callable[[int, int], None]) -> int:
        """Start this target's database from ``source`` (see :func:`seed_database`)."""
        return seed_database(self.verified_onnx(model, variant),
                             self.tuning_database(model, variant, batch=batch, target=target),
                             source, input_shape=self.input_shape(model, batch),
                             target=target, per_function=per_function,
                             on_measured=on_measured)

    def rank_in_model(self, model: str, variant: str, *, batch: int, target: CompileTarget,
                      candidates: int, on_build: Callable[[], None],
                      tuned_from: int | None = None) -> list[str]:
        """Keep the records with which the whole model runs fastest (see
        :func:`rank_in_model`)."""
        return rank_in_model(self.verified_onnx(model, variant),
                               self.tuning_database(model, variant, batch=batch, target=target),
                               input_shape=self.input_shape(model, batch), target=target,
                               candidates=candidates, on_build=on_build,
                               tuned_from=tuned_from)

    @staticmethod
    def compiled_batch(batch: int, device: str) -> int:
        """The batch a library for ``batch`` inputs on ``device`` is compiled for: on a GPU
        the batch itself; on the CPU 1, and a batch runs sample by sample through it (see
        :class:`TvmEngine`). A CPU thread gains nothing from a batch's wider loops: batch 4
        on the znver5, taking turns, the classifier full's build tuned for it ran 0.240 ms
        against 0.128 ms sample by sample (onnxruntime 0.133), and the detector full's,
        never tuned, 642 ms against 7.9. So the CPU keeps one tuned build per variant."""
        return batch if device == 'cuda' else 1

    def input_shape(self, model: str, batch: int) -> tuple[int, ...]:
        shape = self.manifest.models[model].input_shape
        return (batch, *shape[1:])

    def part_input_shape(self, model: str, variant: str, batch: int,
                         part: Part | None) -> tuple[int, ...]:
        if part is None:
            return self.input_shape(model, batch)
        return shape_of(self.static_onnx(model, variant, batch), part[0])

    def loaded(self, model: str, variant: str, *, batch: int, device: str, threads: int,
               lane: str, part: Part | None = None) -> TvmEngine | None:
        """The engine if it is already loaded (never compiles)."""
        with self._lock:
            return self._engines.get((model, variant, batch, device, threads, lane, part))

    def engine(self, model: str, variant: str, *, batch: int = 1, device: str = 'cpu',
               threads: int = 1, lane: str = 'main', part: Part | None = None) -> TvmEngine:
        """The loaded module for ``lane``: a Relax VM is not thread-safe, so each lane (one
        thread each) gets its own VM, while the compiled library is shared. ``part``
        selects a sub-model (see :meth:`parts`)."""
        key = (model, variant, batch, device, threads, lane, part)
        with self._lock:
            if key not in self._engines:
                target = CompileTarget(device=device, num_cores=threads)
                compiled = self.compiled_batch(batch, device)
                library = self.build(model, variant, batch=compiled, target=target, part=part)
                engine = TvmEngine(library, device=device,
                                   input_shape=self.part_input_shape(model, variant, batch,
                                                                     part),
                                   threads=threads, per_sample=compiled < batch)
                for _ in range(3):  # warm-up, and a first latency estimate for packing
                    engine.run(np.zeros(engine.input_shape, np.float32))
                self._engines[key] = engine
            return self._engines[key]
