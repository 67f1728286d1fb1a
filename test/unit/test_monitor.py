"""The monitor's board (parsing /diagnostics) and its terminal view."""

from __future__ import annotations

import math

from rich.console import Console

from edge_perception.monitor.board import Board, Status
from edge_perception.monitor.terminal import render

from .monitor_samples import filled_board, task_status


def test_board_keeps_the_latest_row_per_task_and_lane() -> None:
    snapshot = filled_board().snapshot()
    assert [t.task for t in snapshot.tasks] == ['traffic_light', 'traffic_sign']
    signs = snapshot.tasks[1]
    assert (signs.level, signs.deadline_ms, signs.misses) == (2, 200.0, 37)
    assert (signs.p50_ms, signs.p99_ms) == (150 + 39, 230 + 39)
    assert (signs.late, signs.skipped, signs.rta_ms) == (2, 11, 42.5)
    assert signs.rta_terms_ms == (20.0, 10.0, 10.0, 2.5)
    assert [(lane.lane, lane.fallback, lane.queued) for lane in snapshot.lanes] == [
        ('cpu', False, 1), ('gpu', True, 1)]
    assert snapshot.updated_s == 39.0


def test_history_slides_over_the_window() -> None:
    snapshot = filled_board(seconds=40).snapshot()
    stamps = [p.stamp_s for p in snapshot.history['traffic_light']]
    assert stamps[0] == 9.0
    assert stamps[-1] == 39.0
    assert len(stamps) == 31


def test_foreign_statuses_and_bad_values_are_tolerated() -> None:
    board = Board()
    broken = task_status('x', level=0, p50=1, p99=2, ratio=0)
    broken = Status(broken.name, 0, '', '', {**broken.values, 'response_p99_ms': 'n/a',
                                              'jobs': 'many'})
    assert board.update([broken, Status('other: thing', 0, '', '', {})], stamp_s=1.0) == 1
    row = board.snapshot().tasks[0]
    assert math.isnan(row.p99_ms)
    assert row.jobs == 0


def test_miss_events_are_counted_per_task() -> None:
    board = filled_board(seconds=2)
    for _ in range(3):
        board.record_miss('traffic_sign')
    assert board.snapshot().miss_events == {'traffic_sign': 3}


def test_terminal_view_colours_rows_by_level() -> None:
    console = Console(record=True, width=200, color_system='truecolor')
    console.print(render(filled_board().snapshot(), now_s=40.0))
    text = console.export_text(styles=False, clear=False)
    assert 'traffic_sign' in text
    assert '31.0%' in text
    assert 'CPU fallback' in text
    assert 'last update 1.0 s ago' in text
    html = console.export_html(inline_styles=True)
    assert 'ERROR: missing deadlines' in html
    # ERROR rows are red, OK rows green (rich's standard colours)
    assert '#800000' in html
    assert '#008000' in html


def test_terminal_view_says_when_nothing_arrived_or_data_is_stale() -> None:
    console = Console(record=True, width=160)
    console.print(render(Board().snapshot(), now_s=5.0))
    assert 'waiting for /diagnostics' in console.export_text()
    console.print(render(filled_board().snapshot(), now_s=100.0))
    assert 'last update 61.0 s ago' in console.export_text()


def test_rows_turn_stale_when_diagnostics_stop() -> None:
    snapshot = filled_board().snapshot()  # last update at 39 s; the sign task is ERROR
    assert [snapshot.shown_level(t.level, 41.9) for t in snapshot.tasks] == [0, 2]
    assert [snapshot.shown_level(t.level, 42.1) for t in snapshot.tasks] == [3, 3]
    console = Console(record=True, width=200)
    console.print(render(snapshot, now_s=100.0))
    text = console.export_text()
    assert 'STALE: missing deadlines' in text
    assert 'ERROR' not in text


def test_a_silent_camera_shows_as_its_message() -> None:
    board = Board()
    silent = task_status('traffic_light', level=2, p50=1, p99=2, ratio=0)
    board.update([Status(silent.name, 2, 'no frame yet (31 periods): is the camera running?',
                         silent.hardware_id, {**silent.values, 'input': 'error'})],
                 stamp_s=1.0)
    console = Console(record=True, width=200)
    console.print(render(board.snapshot(), now_s=1.5))
    assert 'ERROR: no frame yet (31 periods): is the camera running?' in console.export_text()
