"""The rqt widget, rendered offscreen with PySide6 (no rqt, no display)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault('QT_QPA_PLATFORM', 'offscreen')
QtWidgets = pytest.importorskip('PySide6.QtWidgets')
QtGui = pytest.importorskip('PySide6.QtGui')

from edge_perception.monitor.board import Board  # noqa: E402
from edge_perception.monitor.qt_widget import LEVEL_COLOURS, DeadlineMonitorWidget  # noqa: E402

from .monitor_samples import filled_board  # noqa: E402


@pytest.fixture(scope='module')
def app() -> Iterator[object]:
    return QtWidgets.QApplication.instance() or QtWidgets.QApplication([])


def test_widget_shows_tasks_lanes_and_charts(app: object, tmp_path: Path) -> None:
    widget = DeadlineMonitorWidget(filled_board(), clock=lambda: 40.0)
    widget.resize(1100, 650)
    widget.refresh()
    assert widget.tasks.rowCount() == 2
    assert widget.lanes.rowCount() == 2
    assert widget.tasks.item(1, 0).text() == 'traffic_sign'
    assert widget.tasks.item(1, 6).text() == '31.0%'
    assert widget.tasks.item(1, 0).background().color().name() == LEVEL_COLOURS[2]
    assert widget.lanes.item(1, 4).text() == 'CPU fallback (no CUDA device)'
    assert sorted(widget.charts) == ['traffic_light', 'traffic_sign']
    chart = widget.charts['traffic_sign']
    assert len(chart.points) == 31
    assert chart.deadline_ms == 200.0
    assert widget.freshness.text() == 'last /diagnostics 1.0 s ago'

    path = tmp_path / 'monitor.png'
    assert widget.grab().save(str(path))
    image = QtGui.QImage(str(path))
    assert (image.width(), image.height()) == (1100, 650)
    # The deadline line is drawn in red inside the signs chart.
    chart_image = chart.grab().toImage()
    colours = [chart_image.pixelColor(x, y) for x in range(chart_image.width())
               for y in range(chart_image.height())]
    reds = sum(1 for c in colours if c.red() > 200 and c.green() < 90 and c.blue() < 90)
    assert reds > 50


def test_empty_board_renders_without_rows(app: object) -> None:
    widget = DeadlineMonitorWidget(Board(), clock=lambda: 0.0)
    widget.refresh()
    assert widget.tasks.rowCount() == 0
    assert not widget.charts
    assert widget.freshness.text() == 'waiting for /diagnostics ...'
