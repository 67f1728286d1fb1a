"""The terminal view of ``edge-perception monitor``: rich tables of tasks and lanes.

Totals (misses, drops) come from /diagnostics; ``events`` counts the deadline-miss events this
monitor received since it started (they arrive between the 1 Hz diagnostics).
"""

from __future__ import annotations

import math

from rich.console import Group
from rich.table import Table
from rich.text import Text

from edge_perception.core.health import LEVEL_NAMES
from edge_perception.monitor.board import STALE_AFTER_S, Snapshot

LEVEL_STYLES = {0: 'green', 1: 'yellow', 2: 'bold red', 3: 'dim'}


def _ms(value: float) -> str:
    return '-' if math.isnan(value) else f'{value:.1f}'


def _ratio(value: float) -> str:
    return '-' if math.isnan(value) else f'{value:.1%}'


def render(snapshot: Snapshot, *, now_s: float) -> Group:
    """One frame of the live view: task table, lane table, freshness line."""
    tasks = Table(title='edge_perception deadline monitor', expand=True)
    for column in ('task', 'lane', 'variant', 'period/deadline ms', 'p50 ms', 'p99 ms',
                   'miss ratio', 'recent', 'misses', 'drops', 'events', 'RTA', 'status'):
        tasks.add_column(column, justify='left' if column in ('task', 'status') else 'right')
    for row in snapshot.tasks:
        level = snapshot.shown_level(row.level, now_s)
        style = LEVEL_STYLES.get(level, '')
        tasks.add_row(
            row.task, row.lane, row.variant, f'{row.period_ms:g}/{row.deadline_ms:g}',
            _ms(row.p50_ms), _ms(row.p99_ms), Text(_ratio(row.miss_ratio), style=style),
            Text(_ratio(row.recent_miss_ratio), style=style),
            str(row.misses), str(row.drops), str(snapshot.miss_events.get(row.task, 0)),
            row.schedulable,
            Text(f'{LEVEL_NAMES.get(level, "?")}: {row.message}', style=style))
    lanes = Table(title='lanes', expand=True)
    for column in ('lane', 'device', 'utilisation', 'queued', 'status'):
        lanes.add_column(column, justify='left' if column in ('lane', 'status') else 'right')
    for lane in snapshot.lanes:
        style = LEVEL_STYLES.get(snapshot.shown_level(lane.level, now_s), '')
        status = 'CPU fallback (no CUDA device)' if lane.fallback else 'OK'
        lanes.add_row(lane.lane, lane.device, _ratio(lane.utilisation), str(lane.queued),
                      Text(status, style=style))
    if snapshot.updated_s is None:
        freshness = Text('waiting for /diagnostics from the perception container ...',
                         style='yellow')
    else:
        age = now_s - snapshot.updated_s
        freshness = Text(f'last update {age:.1f} s ago',
                         style='bold red' if age > STALE_AFTER_S else 'dim')
    return Group(tasks, lanes, freshness)
