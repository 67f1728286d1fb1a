"""Container processes for lanes of their own (``process_per_lane`` in the config).

In one process the lanes share Python's GIL with each other and with the spinning thread: a
lane needs it back after every inference and for its pre- and post-processing, and waits
while another thread holds it. With each lane in a process of its own, only that lane's
spinning thread competes, and operating-system priorities (``nice``) work between lanes as
they say, since a descheduled thread of one lane no longer holds a lock the other waits for.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType

from edge_perception.core.launch_plan import ContainerSpec
from edge_perception.monitor.board import Board


def rss_mb(pid: int | str = 'self') -> float:
    """Resident memory of a process (nan once it is gone)."""
    try:
        status = Path(f'/proc/{pid}/status').read_text()
    except OSError:
        return float('nan')
    for line in status.splitlines():
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024
    return float('nan')


class ChildProcesses:
    """Named child processes, each logging to ``log_dir/<name>.log`` (to this process's
    output when ``log_dir`` is None), stopped together with SIGINT, as ``ros2 launch`` stops
    its nodes, and killed if one does not stop in time."""

    def __init__(self, log_dir: Path | None = None) -> None:
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def log(self, name: str) -> Path | None:
        return None if self.log_dir is None else self.log_dir / f'{name}.log'

    def start(self, name: str, command: Sequence[str]) -> None:
        log = self.log(name)
        output = None if log is None else log.open('wb')
        try:
            self.processes[name] = subprocess.Popen(list(command), stdout=output,
                                                    stderr=output)
        finally:
            if output is not None:
                output.close()  # the child holds its own copy

    def start_containers(self, specs: Iterable[ContainerSpec], *,
                         parameters: dict[str, str] | None = None) -> None:
        """``python -m edge_perception.ros.container`` per spec, with its ROS arguments and
        ``parameters`` on top."""
        extra = [arg for key, value in (parameters or {}).items()
                 for arg in ('-p', f'{key}:={value}')]
        for spec in specs:
            self.start(spec.name, [sys.executable, '-m', 'edge_perception.ros.container',
                                   *spec.command_line_arguments(), *extra])

    def check(self) -> None:
        """Raise if a child exited (each should run until stopped)."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                where = self.log(name) or 'the output above'
                raise RuntimeError(f'{name} exited with status {process.returncode} '
                                   f'(its output: {where})')

    def rss_mb(self, names: Iterable[str]) -> float:
        return sum(rss_mb(self.processes[name].pid) for name in names)

    def stop(self, timeout_s: float = 30.0) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + timeout_s
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> ChildProcesses:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()


def wait_until_reporting(board: Board, lanes: Iterable[str], *, spin: Callable[[], None],
                         processes: ChildProcesses, timeout_s: float = 120.0) -> None:
    """Spin until every lane in ``lanes`` appeared on /diagnostics (``board`` follows it): its
    container loaded and profiled its models and its subscriptions are up."""
    waiting = set(lanes)
    deadline = time.monotonic() + timeout_s
    while missing := waiting - {row.lane for row in board.snapshot().lanes}:
        processes.check()
        if time.monotonic() > deadline:
            raise RuntimeError(f'lanes {sorted(missing)} sent no diagnostics within '
                               f'{timeout_s:.0f} s (logs: {processes.log_dir})')
        spin()
