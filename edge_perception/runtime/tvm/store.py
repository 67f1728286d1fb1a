"""The model store: verified ONNX files, their compiled libraries in a cache, the tuning
databases builds apply (this target's or a borrowed one), and loaded engines.

A library is cached as ``<cache>/<model>-<variant>-b<batch>-<key>.so`` where the key
hashes the ONNX file's SHA-256, the target, the TVM version and the records applied, so
a changed model, target or TVM rebuilds it.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import tvm

from edge_perception.runtime.manifest import Manifest, ModelLoadError, file_sha256
from edge_perception.runtime.model_split import (
    Part,
    cut_tensors,
    shape_of,
    sub_model,
    with_static_input,
)
from edge_perception.runtime.tvm.database import (
    builds_prologue,
    builds_serial,
    tuned_workloads,
    tuning_records,
)
from edge_perception.runtime.tvm.engine import TvmEngine
from edge_perception.runtime.tvm.library_file import intact
from edge_perception.runtime.tvm.lowering import (
    CPU_VM_EXEC,
    compile_onnx,
    read_onnx,
)
from edge_perception.runtime.tvm.target import (
    LOWERING,
    CompileTarget,
)
from edge_perception.runtime.tvm.tir_passes import (
    AFTER_SCHEDULING,
)
from edge_perception.tasks.model_spec import ModelSpec

# Tuning databases live beside the models: <model_dir>/tuning/<target tag>/<model>-...
TUNING_DIR = 'tuning'
# What `tune --new-cpu` costs a model variant, said where a CPU borrows: the six committed
# took 28 minutes on a 2-core Xeon (docs/performance/2026-12-06-new-cpu-and-aarch64.md).
NEW_CPU_MINUTES_PER_VARIANT = 5

_log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$EDGE_PERCEPTION_CACHE``, else ``$XDG_CACHE_HOME/edge_perception/tvm``."""
    if 'EDGE_PERCEPTION_CACHE' in os.environ:
        return Path(os.environ['EDGE_PERCEPTION_CACHE'])
    base = Path(os.environ.get('XDG_CACHE_HOME', Path.home() / '.cache'))
    return base / 'edge_perception' / 'tvm'


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

    def spec(self, model: str) -> ModelSpec:
        return self.manifest.spec(model)

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
        when use_tuning is off. A record is a schedule for one TIR function; it replays on
        any CPU of the architecture. Measurements: docs/design/tvm.md."""
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
        same kind for ``target``'s; where it has some, the other way round; with
        ``any_arch``, last a CPU of another architecture (to seed from: its records are timed
        here); None where there is none. A schedule's tile and loop order, most of its speed,
        are the CPU's; the cores change how its outer loops are shared out.
        Measurements: docs/design/tvm.md."""
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
        if library.exists() and not intact(library):
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

    @staticmethod
    def compiled_batch(batch: int, device: str) -> int:
        """The batch a library for ``batch`` inputs on ``device`` is compiled for: on a GPU
        the batch itself; on the CPU 1, and a batch runs sample by sample through it (see
        :class:`TvmEngine`), since a CPU thread gains nothing from a batch's wider loops.
        Measurements: docs/design/tvm.md."""
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
