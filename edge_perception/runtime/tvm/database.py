"""A tuning database as builds read it: its records, the functions it covers, and the
build options its tuning run chose (``build_options.json``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge_perception.runtime.manifest import ModelLoadError
from edge_perception.runtime.tvm.target import (
    CompileTarget,
)


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


_BUILD_OPTIONS = 'build_options.json'


def write_build_option(database: Path, name: str, value: bool) -> None:
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



MEASURED = 'measured.json'  # tune --budget's last timing of the build against onnxruntime


def write_measured(database: Path, *, tvm_ns: int, onnxruntime_ns: int) -> None:
    database.mkdir(parents=True, exist_ok=True)
    (database / MEASURED).write_text(json.dumps(
        {'tvm_ms': tvm_ns / 1e6, 'onnxruntime_ms': onnxruntime_ns / 1e6}) + '\n')


def measured_against_onnxruntime(database: Path) -> tuple[float, float] | None:
    """(TVM ms, onnxruntime ms) as ``tune --budget`` last timed them here, if it did."""
    try:
        raw = json.loads((database / MEASURED).read_text())
        return float(raw['tvm_ms']), float(raw['onnxruntime_ms'])
    except (OSError, ValueError, KeyError, TypeError):
        return None
