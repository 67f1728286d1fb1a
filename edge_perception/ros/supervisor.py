"""``edge-perception launch``: every container in a child process, watched by this one.

The launching process does no perception itself, so it stays responsive: it notices a
container that died within a poll (0.25 s), reports its tasks as ERROR on /diagnostics,
restarts it after a back-off (1, 2, 4 ... 30 s, counted), and on SIGINT or SIGTERM, start-up
included, stops every container within 2 s. Children die with it (PR_SET_PDEATHSIG), so a
killed launcher leaves no container publishing behind it, as ``ros2 launch`` would not.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.signals import SignalHandlerOptions
from std_msgs.msg import Header

from edge_perception.core.health import PREFIX
from edge_perception.core.launch_plan import ContainerSpec, LaunchPlan
from edge_perception.ros.lean_node import LeanNode
from edge_perception.ros.message_adapter import time_from_ns

BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
POLL_S = 0.25
LAUNCH_PREFIX = 'edge_perception_launch'
STOP_GRACE_S = 1.5  # then SIGKILL: a container loading models may not look up for seconds


@dataclass
class Child:
    """One container process and what became of it."""

    spec: ContainerSpec
    process: subprocess.Popen[bytes]
    restarts: int = 0
    died: str | None = None  # why it last died, while it waits to restart
    restart_at: float | None = None


@dataclass
class Supervisor:
    """Starts ``specs`` with ``start`` and keeps them running (see the module docstring).

    :param start: runs a container's process (tests pass their own).
    :param clock: monotonic seconds (tests pass a fake one).
    """

    specs: Sequence[ContainerSpec]
    start: Callable[[ContainerSpec], subprocess.Popen[bytes]]
    clock: Callable[[], float] = time.monotonic
    log: Callable[[str], None] = print
    children: list[Child] = field(default_factory=list)

    def start_all(self) -> None:
        self.children = [Child(spec, self.start(spec)) for spec in self.specs]

    def poll(self) -> None:
        """Notice deaths, restart those whose back-off has passed."""
        now = self.clock()
        for child in self.children:
            if child.restart_at is None and child.process.poll() is not None:
                wait = BACKOFF_S[min(child.restarts, len(BACKOFF_S) - 1)]
                child.died = _death(child.process.returncode)
                child.restart_at = now + wait
                self.log(f'[ERROR] {child.spec.name} {child.died}; restarting it in '
                         f'{wait:g} s (restart {child.restarts + 1})')
            elif child.restart_at is not None and now >= child.restart_at:
                child.process = self.start(child.spec)
                child.restarts += 1
                child.restart_at = None
                self.log(f'[INFO] {child.spec.name} restarted (pid {child.process.pid})')

    def statuses(self) -> list[DiagnosticStatus]:
        """ERROR for each task of a container that is down, and one status per container
        (its pid and restarts; a component of its own, which the monitor's task table
        leaves out)."""
        now = self.clock()
        statuses: list[DiagnosticStatus] = []
        for child in self.children:
            down = child.restart_at is not None
            message = (f'{child.died}; restart in {max(0.0, child.restart_at - now):.1f} s'
                       if child.restart_at is not None else 'running')
            if down:
                statuses.extend(DiagnosticStatus(
                    level=DiagnosticStatus.ERROR, name=f'{PREFIX}: {node.task}',
                    message=f'container {child.spec.name} {message}',
                    hardware_id=child.spec.lane or '',
                    values=[KeyValue(key='container_restarts', value=str(child.restarts))])
                    for node in child.spec.nodes)
            statuses.append(DiagnosticStatus(
                level=DiagnosticStatus.ERROR if down else DiagnosticStatus.OK,
                name=f'{LAUNCH_PREFIX}: {child.spec.name}', message=message,
                hardware_id=child.spec.lane or '',
                values=[KeyValue(key='pid', value=str(child.process.pid)),
                        KeyValue(key='restarts', value=str(child.restarts))]))
        return statuses

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM every container, SIGKILL those still running after ``grace_s`` (SIGTERM:
        before rclpy is up it ends a process silently, where SIGINT prints a traceback)."""
        for child in self.children:
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for child in self.children:
            try:
                child.process.wait(timeout=max(0.01, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()


def _death(code: int) -> str:
    if code < 0:
        return f'was killed by {signal.Signals(-code).name}'
    return f'exited with status {code}'


def start_container(spec: ContainerSpec) -> subprocess.Popen[bytes]:
    """``python -m edge_perception.ros.container`` for ``spec``, dying with this process."""
    return subprocess.Popen([sys.executable, '-m', 'edge_perception.ros.container',
                             *spec.command_line_arguments()], preexec_fn=die_with_parent)


def run_launch(plan: LaunchPlan) -> int:
    """Start and supervise ``plan``'s containers until SIGINT or SIGTERM; 0 when stopped."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    supervisor = Supervisor(plan.containers, start_container)
    supervisor.start_all()
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)  # ours above stop everything
    node = LeanNode('edge_perception_launch')
    diagnostics = node.create_publisher(DiagnosticArray, '/diagnostics', 10)
    try:
        next_report = 0.0
        while not stop.is_set():
            supervisor.poll()
            if time.monotonic() >= next_report:
                diagnostics.publish(DiagnosticArray(
                    header=Header(stamp=time_from_ns(time.time_ns())),
                    status=supervisor.statuses()))
                next_report = time.monotonic() + 1.0
            stop.wait(POLL_S)
    finally:
        supervisor.stop()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def die_with_parent() -> None:
    """In a child before exec: SIGKILL it when its parent dies (Linux's PR_SET_PDEATHSIG), so
    a killed parent leaves no container running behind it."""
    try:
        import ctypes

        ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, int(signal.SIGKILL))
    except (OSError, AttributeError):
        pass  # not Linux: children then outlive a killed parent
