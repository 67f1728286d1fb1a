"""A compiled library's SHA-256 record (``<library>.sha256``), written at build time and
checked before loading: a .so is native code, so a corrupted or swapped file is refused.
"""

from __future__ import annotations

from pathlib import Path

from edge_perception.runtime.manifest import ModelLoadError, file_sha256


def sidecar(library: Path) -> Path:
    return library.with_name(library.name + '.sha256')


def intact(library: Path) -> bool:
    """Whether ``library`` has its SHA-256 record and matches it."""
    try:
        return file_sha256(library) == sidecar(library).read_text(encoding='utf-8').strip()
    except OSError:
        return False


def recorded_sha256(library: Path) -> str:
    try:
        return sidecar(library).read_text(encoding='utf-8').strip()
    except OSError as err:
        raise ModelLoadError(f'Cannot read SHA-256 record of {library}: {err}') from None

