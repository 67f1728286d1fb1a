"""Apache TVM (Relax) compilation, caching and execution of the manifest's ONNX models.

The only module that imports tvm. A compiled library is cached as
``<cache>/<model>-<variant>-b<batch>-<key>.so`` where the key hashes the ONNX file's SHA-256,
the target and the TVM version, so a changed model, target or TVM rebuilds it. Each library
has a ``.sha256`` sidecar written at build time and checked before loading, because a .so is
native code: a corrupted or swapped file is refused instead of being loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import tvm
from tvm import relax
from tvm.relax.frontend.onnx import from_onnx

from edge_perception.runtime.manifest import Manifest, ModelLoadError, file_sha256


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


def host_cpu() -> str:
    """LLVM's name for this CPU (e.g. 'znver5'), or 'generic' when LLVM does not know it."""
    cpu = str(tvm.target.codegen.llvm_get_system_cpu())
    return cpu if tvm.target.codegen.llvm_is_valid_cpu(cpu, 'x86_64-linux-gnu') else 'generic'


@dataclass(frozen=True)
class CompileTarget:
    """Where a lane runs its models: 'cpu' (LLVM, ``num_cores`` threads) or 'cuda'."""

    device: str
    num_cores: int = 1

    def spec(self) -> dict[str, Any]:
        host = {'kind': 'llvm', 'mtriple': 'x86_64-linux-gnu', 'mcpu': host_cpu(),
                'num-cores': self.num_cores}
        if self.device == 'cuda':
            return {'kind': 'cuda', 'host': host}
        if self.device == 'cpu':
            return host
        raise ModelLoadError(f'unknown device {self.device!r} (use cpu or cuda)')

    def cache_key(self) -> str:
        return json.dumps(self.spec(), sort_keys=True)


class TvmEngine:
    """A loaded TVM library bound to a device; implements :class:`InferenceEngine`."""

    def __init__(self, library: Path, *, device: str, input_shape: tuple[int, ...],
                 threads: int = 1) -> None:
        expected = _read_sidecar(library)
        if file_sha256(library) != expected:
            raise ModelLoadError(f'Compiled library {library} does not match its SHA-256 record')
        try:
            executable = tvm.runtime.load_module(str(library))
        except Exception as err:
            raise ModelLoadError(f'Cannot load compiled library {library}: {err}') from None
        self._device = tvm.cuda(0) if device == 'cuda' else tvm.cpu(0)
        self._vm = relax.VirtualMachine(executable, self._device)
        self._main = self._vm['main']
        self._threads = threads
        self._configured = threading.local()
        self.device = device
        self.input_shape = input_shape
        self.library = library

    def run(self, inputs: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        if inputs.shape != self.input_shape:
            raise ValueError(f'{self.library.name}: input shape {inputs.shape}, '
                             f'expected {self.input_shape}')
        if not getattr(self._configured, 'done', False):
            # TVM's CPU thread pool is per calling thread: size it once per lane thread.
            tvm.get_global_func('runtime.config_threadpool')(0, self._threads)
            self._configured.done = True
        result = self._main(tvm.runtime.tensor(np.ascontiguousarray(inputs), self._device))
        return np.asarray(result.numpy(), dtype=np.float32)


def _sidecar(library: Path) -> Path:
    return library.with_name(library.name + '.sha256')


def _read_sidecar(library: Path) -> str:
    try:
        return _sidecar(library).read_text(encoding='utf-8').strip()
    except OSError as err:
        raise ModelLoadError(f'Cannot read SHA-256 record of {library}: {err}') from None


def compile_onnx(onnx_path: Path, library: Path, *, input_shape: tuple[int, ...],
                 target: CompileTarget) -> None:
    """Import ``onnx_path`` at a static ``input_shape``, compile for ``target``, export."""
    try:
        model = onnx.load(str(onnx_path))
        onnx.checker.check_model(model)
    except Exception as err:
        raise ModelLoadError(f'Cannot read ONNX model {onnx_path}: {err}') from None
    input_name = model.graph.input[0].name
    mod = from_onnx(model, shape_dict={input_name: list(input_shape)},
                    keep_params_in_input=False)
    tvm_target = tvm.target.Target(target.spec())
    if target.device == 'cuda':
        from tvm import dlight

        # Relax on CUDA needs every TIR function bound to GPU threads; dlight's rules do it.
        with tvm_target:
            mod = relax.transform.LegalizeOps()(mod)
            mod = dlight.ApplyDefaultSchedule(
                dlight.gpu.Matmul(), dlight.gpu.GEMV(), dlight.gpu.Reduction(),
                dlight.gpu.GeneralReduction(), dlight.gpu.Fallback(),
            )(mod)
    executable = tvm.compile(mod, target=tvm_target)
    library.parent.mkdir(parents=True, exist_ok=True)
    partial = library.with_name(f'.{library.name}.{os.getpid()}.tmp.so')
    executable.export_library(str(partial))
    _sidecar(library).write_text(file_sha256(partial) + '\n', encoding='utf-8')
    partial.replace(library)  # atomic: concurrent builders never see a half-written library


class ModelStore:
    """Holds the compiled modules of every (model, variant, batch, device) in one process.

    Verifies each ONNX file against the manifest, compiles it on first use (or reuses the
    cache), loads it and runs one warm-up inference.
    """

    def __init__(self, manifest: Manifest, *, cache_dir: Path) -> None:
        self.manifest = manifest
        self.cache_dir = cache_dir
        self._engines: dict[tuple[str, str, int, str, int], TvmEngine] = {}
        self._lock = threading.Lock()

    def library_path(self, model: str, variant: str, *, batch: int,
                     target: CompileTarget) -> Path:
        entry = self.manifest.variant(model, variant)
        key = hashlib.sha256(
            f'{entry.sha256}|{target.cache_key()}|{tvm.__version__}|{batch}'.encode()
        ).hexdigest()[:20]
        return self.cache_dir / f'{model}-{variant}-b{batch}-{key}.so'

    def build(self, model: str, variant: str, *, batch: int, target: CompileTarget) -> Path:
        """Compile unless a cached library exists; returns the library path."""
        entry = self.manifest.variant(model, variant)
        onnx_path = self.manifest.path(model, variant)
        if not onnx_path.is_file():
            raise ModelLoadError(f'Model file {onnx_path} is missing')
        if file_sha256(onnx_path) != entry.sha256:
            raise ModelLoadError(f'Model file {onnx_path} does not match its manifest SHA-256')
        library = self.library_path(model, variant, batch=batch, target=target)
        if not library.exists():
            compile_onnx(onnx_path, library, input_shape=self.input_shape(model, batch),
                         target=target)
        return library

    def input_shape(self, model: str, batch: int) -> tuple[int, ...]:
        shape = self.manifest.models[model].input_shape
        return (batch, *shape[1:])

    def engine(self, model: str, variant: str, *, batch: int = 1, device: str = 'cpu',
               threads: int = 1) -> TvmEngine:
        key = (model, variant, batch, device, threads)
        with self._lock:
            if key not in self._engines:
                target = CompileTarget(device=device, num_cores=threads)
                library = self.build(model, variant, batch=batch, target=target)
                engine = TvmEngine(library, device=device,
                                   input_shape=self.input_shape(model, batch), threads=threads)
                engine.run(np.zeros(engine.input_shape, np.float32))  # warm-up
                self._engines[key] = engine
            return self._engines[key]
