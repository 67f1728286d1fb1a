"""The deadline monitor as a Qt widget: the rqt plugin's body, usable without rqt.

Tables of tasks and lanes (coloured by diagnostic level) and, per task, a scrolling chart of
response time p50/p99 over the last minute with its deadline as a dashed line. It reads a
:class:`Board` twice a second and knows nothing of ROS or rqt, so tests render it offscreen.
On ROS installs it uses rqt's python_qt_binding; elsewhere PySide6.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from edge_perception.core.health import LEVEL_NAMES
from edge_perception.monitor.board import Board, HistoryPoint, Snapshot

if TYPE_CHECKING:
    from PySide6 import QtCore, QtGui, QtWidgets
else:
    try:  # rqt's binding on a ROS install, so the plugin shares rqt's Qt
        from python_qt_binding import QtCore, QtGui, QtWidgets
    except ImportError:
        from PySide6 import QtCore, QtGui, QtWidgets

REFRESH_MS = 500
LEVEL_COLOURS = {0: '#c8f0c8', 1: '#fff0a0', 2: '#ffb0b0', 3: '#dddddd'}
TASK_COLUMNS = ('task', 'lane', 'variant', 'period/deadline ms', 'p50 ms', 'p99 ms',
                'miss ratio', 'recent', 'misses', 'drops', 'RTA', 'status')
LANE_COLUMNS = ('lane', 'device', 'utilisation', 'queued', 'status')


def _ms(value: float) -> str:
    return '-' if math.isnan(value) else f'{value:.1f}'


def _ratio(value: float) -> str:
    return '-' if math.isnan(value) else f'{value:.1%}'


class ResponseChart(QtWidgets.QWidget):
    """Response time of one task over the board's history window, with its deadline."""

    def __init__(self, task: str, *, window_s: float,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.task = task
        self.window_s = window_s
        self.points: tuple[HistoryPoint, ...] = ()
        self.deadline_ms = math.nan
        self.now_s = 0.0
        self.setMinimumSize(320, 140)

    def set_data(self, points: tuple[HistoryPoint, ...], *, deadline_ms: float,
                 now_s: float) -> None:
        self.points, self.deadline_ms, self.now_s = points, deadline_ms, now_s
        self.update()

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:  # noqa: N802 (Qt's name)
        painter = QtGui.QPainter(self)
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), QtGui.QColor('white'))
        left, top, right, bottom = 44, 18, self.width() - 8, self.height() - 18
        painter.setPen(QtGui.QColor('black'))
        painter.drawText(left, 13, f'{self.task}: response time (ms), last {self.window_s:g} s')
        painter.drawRect(left, top, right - left, bottom - top)
        values = [v for p in self.points for v in (p.p50_ms, p.p99_ms) if not math.isnan(v)]
        scale = max([*values, self.deadline_ms if not math.isnan(self.deadline_ms) else 0, 1.0])
        scale *= 1.15

        def x(stamp_s: float) -> float:
            return right - (self.now_s - stamp_s) / self.window_s * (right - left)

        def y(ms: float) -> float:
            return bottom - ms / scale * (bottom - top)

        painter.drawText(2, top + 10, f'{scale:.0f}')
        painter.drawText(2, bottom, '0')
        if not math.isnan(self.deadline_ms):
            pen = QtGui.QPen(QtGui.QColor('red'))
            pen.setStyle(QtCore.Qt.PenStyle.DashLine)
            painter.setPen(pen)
            painter.drawLine(QtCore.QPointF(left, y(self.deadline_ms)),
                             QtCore.QPointF(right, y(self.deadline_ms)))
            painter.drawText(left + 4, int(y(self.deadline_ms)) - 3,
                             f'deadline {self.deadline_ms:g} ms')
        recent = [p for p in self.points if self.now_s - p.stamp_s <= self.window_s]
        for colour, series in (('#1f77b4', [(p.stamp_s, p.p50_ms) for p in recent]),
                               ('#ff7f0e', [(p.stamp_s, p.p99_ms) for p in recent])):
            shown = [(t, ms) for t, ms in series if not math.isnan(ms)]
            painter.setPen(QtGui.QPen(QtGui.QColor(colour), 2))
            for (t0, ms0), (t1, ms1) in itertools.pairwise(shown):
                painter.drawLine(QtCore.QPointF(x(t0), y(ms0)), QtCore.QPointF(x(t1), y(ms1)))
        painter.setPen(QtGui.QColor('#1f77b4'))
        painter.drawText(right - 90, bottom - 6, 'p50')
        painter.setPen(QtGui.QColor('#ff7f0e'))
        painter.drawText(right - 50, bottom - 6, 'p99')
        painter.end()


class DeadlineMonitorWidget(QtWidgets.QWidget):
    """Task table, lane table and one response-time chart per task."""

    def __init__(self, board: Board, *, clock: Callable[[], float] = time.monotonic,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName('DeadlineMonitorWidget')
        self.setWindowTitle('edge_perception deadlines')
        self.board = board
        self._clock = clock
        self.tasks = self._table(TASK_COLUMNS)
        self.lanes = self._table(LANE_COLUMNS)
        self.freshness = QtWidgets.QLabel('waiting for /diagnostics ...')
        self.charts: dict[str, ResponseChart] = {}
        self._chart_grid = QtWidgets.QGridLayout()
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.tasks)
        layout.addWidget(self.lanes)
        layout.addLayout(self._chart_grid)
        layout.addStretch(1)
        layout.addWidget(self.freshness)
        self.timer = QtCore.QTimer(self)
        self.timer.timeout.connect(self.refresh)
        self.timer.start(REFRESH_MS)

    @staticmethod
    def _table(columns: tuple[str, ...]) -> QtWidgets.QTableWidget:
        table = QtWidgets.QTableWidget(0, len(columns))
        table.setHorizontalHeaderLabels(list(columns))
        table.verticalHeader().setVisible(False)
        table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        table.horizontalHeader().setStretchLastSection(True)
        return table

    @staticmethod
    def _fill(table: QtWidgets.QTableWidget, rows: list[tuple[int, list[str]]]) -> None:
        table.setRowCount(len(rows))
        for r, (level, cells) in enumerate(rows):
            for c, text in enumerate(cells):
                item = QtWidgets.QTableWidgetItem(text)
                item.setBackground(QtGui.QColor(LEVEL_COLOURS.get(level, 'white')))
                table.setItem(r, c, item)
        table.resizeColumnsToContents()
        height = table.horizontalHeader().height() + 4 + sum(
            table.rowHeight(r) for r in range(len(rows)))
        table.setFixedHeight(height)

    def refresh(self) -> None:
        self.show_snapshot(self.board.snapshot(), now_s=self._clock())

    def show_snapshot(self, snapshot: Snapshot, *, now_s: float) -> None:
        levels = {t.task: snapshot.shown_level(t.level, now_s) for t in snapshot.tasks}
        self._fill(self.tasks, [
            (levels[t.task], [t.task, t.lane, t.variant, f'{t.period_ms:g}/{t.deadline_ms:g}',
                              _ms(t.p50_ms), _ms(t.p99_ms), _ratio(t.miss_ratio),
                              _ratio(t.recent_miss_ratio), str(t.misses), str(t.drops),
                              t.schedulable,
                              f'{LEVEL_NAMES.get(levels[t.task], "?")}: {t.message}'])
            for t in snapshot.tasks])
        self._fill(self.lanes, [
            (snapshot.shown_level(lane.level, now_s),
             [lane.lane, lane.device, _ratio(lane.utilisation), str(lane.queued),
              'CPU fallback (no CUDA device)' if lane.fallback else 'OK'])
            for lane in snapshot.lanes])
        for task in snapshot.tasks:
            chart = self.charts.get(task.task)
            if chart is None:
                chart = ResponseChart(task.task, window_s=self.board.history_s)
                index = len(self.charts)
                self._chart_grid.addWidget(chart, index // 2, index % 2)
                self.charts[task.task] = chart
            chart.set_data(snapshot.history.get(task.task, ()), deadline_ms=task.deadline_ms,
                           now_s=now_s)
        if snapshot.updated_s is not None:
            self.freshness.setText(f'last /diagnostics {now_s - snapshot.updated_s:.1f} s ago')
