"""A MetaSchedule JSON database as its files' lines, to build with chosen records only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import tvm_ffi


class RecordLines:
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
        (parsing a whole large database per build took most of the build)."""
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

