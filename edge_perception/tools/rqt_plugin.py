"""The rqt plugin: Plugins > Robot Tools > Deadline Monitor (edge_perception).

A thin shell: rqt's node feeds a :class:`Board` (see monitor_node.attach_board) and the
plugin shows :class:`DeadlineMonitorWidget`, which is tested offscreen without rqt. Needs
rqt_gui_py (a real ROS 2 install); declared in plugin.xml and exported in package.xml.
"""

from __future__ import annotations

from typing import Any

from qt_gui.plugin import Plugin  # untyped: subclassing it is Any to mypy

from edge_perception.monitor.board import Board
from edge_perception.monitor.qt_widget import DeadlineMonitorWidget
from edge_perception.tools.monitor_node import attach_board


class DeadlineMonitorPlugin(Plugin):  # type: ignore[misc]
    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.setObjectName('DeadlineMonitor')
        self._node = context.node
        self._board = Board()
        self._subscriptions = attach_board(self._node, self._board)
        self._widget = DeadlineMonitorWidget(self._board)
        if context.serial_number() > 1:
            self._widget.setWindowTitle(
                f'{self._widget.windowTitle()} ({context.serial_number()})')
        context.add_widget(self._widget)

    def shutdown_plugin(self) -> None:
        self._widget.timer.stop()
        for subscription in self._subscriptions:
            self._node.destroy_subscription(subscription)
