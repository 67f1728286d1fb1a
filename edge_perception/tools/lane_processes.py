"""Container processes for lanes of their own (``process_per_lane`` in the config).

In one process the lanes share Python's GIL with each other and with the spinning thread: a
lane needs it back after every inference and for its pre- and post-processing, and waits
while another thread holds it. With each lane in a process of its own, only that lane's
spinning thread competes, and operating-system priorities (``nice``, ``rt_priority``) work
between lanes as they say, since a descheduled thread of one lane no longer holds a lock the
other waits for.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor

from edge_perception.core.launch_plan import ContainerSpec
from edge_perception.core.thread_setup import pin_process_threads, restore_threads
from edge_perception.monitor.board import Board, TaskRow
from edge_perception.ros.lean_node import LeanNode
from edge_perception.ros.supervisor import die_with_parent
from edge_perception.tools.monitor_node import attach_board


def rss_mb(pid: int) -> float:
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
                                                    stderr=output, preexec_fn=die_with_parent)
        finally:
            if output is not None:
                output.close()  # the child holds its own copy

    def start_containers(self, specs: Iterable[ContainerSpec], *,
                         parameters: dict[str, str] | None = None) -> None:
        """``python -m edge_perception.ros.container`` per spec, with its ROS arguments and
        ``parameters`` on top."""
        for spec in specs:
            self.start(spec.name, [sys.executable, '-m', 'edge_perception.ros.container',
                                   *spec.command_line_arguments(parameters)])

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


@contextmanager
def off_lane_cores(cpus: Sequence[int]) -> Iterator[None]:
    """Keep this process, and the children it starts meanwhile (they inherit it), on ``cpus``
    (a config's ``executor_cpus``) instead of every core: a lane that runs SCHED_FIFO on a
    core of its own leaves a normal thread placed there waiting until the OS moves it (a
    benchmark's frame player and output collector there put the urgent task's end-to-end
    p99 at 22-27 ms while the executor itself saw no late job). Nothing to do when ``cpus`` is
    empty."""
    previous, _ = pin_process_threads(cpus) if cpus else ({}, [])
    try:
        yield
    finally:
        restore_threads(previous)


# Benchmarks hold the configured variants: adaptation would move the load they set up.
FIXED_VARIANTS = {'select_variants': 'false', 'adapt_variants': 'false'}


class Observer:
    """A node of its own that follows every container's /diagnostics, as
    ``edge-perception monitor`` does: benchmarks read the containers they start from it."""

    def __init__(self, context: Context, name: str) -> None:
        self.node = LeanNode(name, context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.board = Board()
        attach_board(self.node, self.board)

    def spin(self) -> None:
        self.executor.spin_once(timeout_sec=0.05)

    def spin_for(self, seconds: float) -> None:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            self.spin()

    def task(self, name: str) -> TaskRow | None:
        """The task's latest status, None before its container first reported."""
        return next((row for row in self.board.snapshot().tasks if row.task == name), None)

    def wait_until(self, condition: Callable[[], bool], processes: ChildProcesses, *,
                   what: str, timeout_s: float) -> None:
        """Spin until ``condition()`` holds; raise, naming ``what`` was awaited, when one of
        ``processes`` exits or ``timeout_s`` passes."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            processes.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f'{what} within {timeout_s:.0f} s '
                                   f'(logs: {processes.log_dir})')
            self.spin()

    def wait_for_lanes(self, lanes: Iterable[str], processes: ChildProcesses,
                       timeout_s: float = 120.0) -> None:
        """Spin until every lane in ``lanes`` appeared on /diagnostics: its container loaded
        and profiled its models and its subscriptions are up."""
        waiting = set(lanes)
        self.wait_until(lambda: waiting <= {row.lane for row in self.board.snapshot().lanes},
                        processes, what=f'not every lane of {sorted(waiting)} reported',
                        timeout_s=timeout_s)

    def destroy(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
