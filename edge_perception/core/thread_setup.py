"""OS scheduling for lane threads: real-time priority or niceness, CPU pinning, and how long
another thread may hold the GIL."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Sequence

_log = logging.getLogger(__name__)


def configure_current_thread(*, lane: str, rt_priority: int | None, nice: int | None,
                             cpus: Sequence[int]) -> list[str]:
    """Apply what is permitted to the calling thread; returns one line per setting applied or
    refused (refusals are also logged: SCHED_FIFO usually needs CAP_SYS_NICE)."""
    lines = []
    if cpus:
        try:
            os.sched_setaffinity(0, set(cpus))
            lines.append(f'lane {lane}: pinned to CPUs {sorted(cpus)}')
        except OSError as err:
            lines.append(f'lane {lane}: cannot pin to CPUs {sorted(cpus)}: {err.strerror}')
    if rt_priority is not None:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(rt_priority))
            lines.append(f'lane {lane}: SCHED_FIFO priority {rt_priority}')
        except (OSError, AttributeError) as err:
            reason = getattr(err, 'strerror', None) or str(err)
            lines.append(f'lane {lane}: SCHED_FIFO {rt_priority} not permitted ({reason}); '
                         'running with the default policy')
    if nice is not None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
            lines.append(f'lane {lane}: nice {nice}')
        except OSError as err:
            lines.append(f'lane {lane}: nice {nice} not permitted ({err.strerror})')
    for line in lines:
        _log.info(line)
    return lines


def pin_process_threads(cpus: Sequence[int]) -> tuple[dict[int, set[int]], list[str]]:
    """Pin every thread of this process (the spinning thread, DDS, thread pools) to ``cpus``;
    threads they start later inherit it. Returns each thread's previous CPU set, for
    :func:`restore_threads`, and the lines to log."""
    previous: dict[int, set[int]] = {}
    try:
        thread_ids = [int(tid) for tid in os.listdir('/proc/self/task')]
    except OSError as err:
        return previous, [f'executor threads: cannot list threads to pin: {err.strerror}']
    failed = 0
    for tid in thread_ids:
        try:
            before = os.sched_getaffinity(tid)
            os.sched_setaffinity(tid, set(cpus))
        except OSError:
            failed += 1  # a thread that just exited, or a refused CPU set
            continue
        previous[tid] = before
    line = f'executor threads ({len(previous)}) pinned to CPUs {sorted(cpus)}'
    if failed:
        line += f' ({failed} could not be pinned)'
    _log.info(line)
    return previous, [line]


def restore_threads(previous: dict[int, set[int]]) -> None:
    """Give threads pinned by :func:`pin_process_threads` their CPU sets back."""
    for tid, cpus in previous.items():
        with contextlib.suppress(OSError):  # the thread has exited
            os.sched_setaffinity(tid, cpus)


def set_gil_switch_interval(interval_ms: float) -> float:
    """Make a thread that holds the GIL hand it over after ``interval_ms`` when another thread
    asks for it; returns the previous interval (ms), for restoring. A lane needs the GIL
    between its stages and after each inference (TVM releases it while computing); with
    Python's 5 ms default, the spinning thread or the other lane delayed it by up to that
    much every time."""
    previous = sys.getswitchinterval() * 1000
    sys.setswitchinterval(interval_ms / 1000)
    _log.info('GIL switch interval %.2f ms (was %.2f ms)', interval_ms, previous)
    return previous
