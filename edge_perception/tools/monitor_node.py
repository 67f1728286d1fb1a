"""Feeds a monitor :class:`Board` from the ROS graph: /diagnostics and the deadline-miss events.

Works on any node (the monitor's own, or the one rqt hands its plugins), from any process
on the graph.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from edge_perception.monitor.board import Board, Status
from edge_perception.ros.message_adapter import DEADLINE_MISS_TOPIC, message_adapter


def status_of(msg: Any) -> Status:
    """A diagnostic_msgs/DiagnosticStatus as a ROS-free :class:`Status`."""
    level = msg.level[0] if isinstance(msg.level, bytes) else int(msg.level)
    return Status(name=msg.name, level=level, message=msg.message,
                  hardware_id=msg.hardware_id,
                  values={kv.key: kv.value for kv in msg.values})


def attach_board(node: Node, board: Board, *,
                 clock: Callable[[], float] = time.monotonic) -> list[Any]:
    """Subscribe ``node`` so that ``board`` follows the perception container; returns the
    subscriptions (stamps are receive times on ``clock``, the clock the views read)."""
    adapter = message_adapter()

    def on_diagnostics(msg: DiagnosticArray) -> None:
        board.update([status_of(status) for status in msg.status], stamp_s=clock())

    def on_miss(msg: Any) -> None:
        try:
            board.record_miss(adapter.read_deadline_miss(msg).task)
        except ValueError as err:
            node.get_logger().warning(f'ignored a deadline-miss message: {err}',
                                      throttle_duration_sec=5.0)

    return [node.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, 10),
            node.create_subscription(adapter.deadline_miss_type(), DEADLINE_MISS_TOPIC,
                                     on_miss, 50)]


def run_monitor(*, duration_s: float | None, snapshot_dir: Path | None) -> int:
    """``edge-perception monitor``: the live terminal view at 2 Hz until Ctrl-C (or for
    ``duration_s``); with ``snapshot_dir``, also write the view as SVG and the rqt widget
    as PNG when it ends (README figures, bug reports)."""
    from rich.console import Console
    from rich.live import Live

    from edge_perception.monitor.terminal import render

    rclpy.init()
    node = Node('edge_perception_monitor')
    board = Board()
    attach_board(node, board)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    # A snapshot is a figure: wide enough for every column whatever the terminal.
    console = Console(record=True, width=180) if snapshot_dir else Console()
    end = None if duration_s is None else time.monotonic() + duration_s
    try:
        with Live(render(board.snapshot(), now_s=time.monotonic()), console=console,
                  refresh_per_second=2) as live:
            while end is None or time.monotonic() < end:
                time.sleep(0.5)
                live.update(render(board.snapshot(), now_s=time.monotonic()))
    except KeyboardInterrupt:
        pass
    finally:
        # The spinning thread must have left rclpy before the context goes: a thread still
        # waiting inside it at exit aborted the process ("terminate called ...", exit 134).
        executor.shutdown()
        spinner.join(timeout=5.0)
        node.destroy_node()
        rclpy.try_shutdown()
    if snapshot_dir is not None:
        snapshot_dir.mkdir(parents=True, exist_ok=True)
        console.print(render(board.snapshot(), now_s=time.monotonic()))
        console.save_svg(str(snapshot_dir / 'monitor.svg'), title='edge-perception monitor')
        _save_widget(board, snapshot_dir / 'monitor_widget.png')
        print(f'wrote {snapshot_dir / "monitor.svg"} and {snapshot_dir / "monitor_widget.png"}')
    return 0


def _save_widget(board: Board, path: Path) -> None:
    """Render the rqt widget offscreen to ``path``."""
    import os

    os.environ.setdefault('QT_QPA_PLATFORM', 'offscreen')
    from PySide6.QtWidgets import QApplication

    from edge_perception.monitor.qt_widget import DeadlineMonitorWidget

    app = QApplication.instance() or QApplication([])
    widget = DeadlineMonitorWidget(board)
    widget.resize(1100, 650)
    widget.refresh()
    widget.grab().save(str(path))
    del app
