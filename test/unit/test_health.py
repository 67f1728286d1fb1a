"""The /diagnostics schema: what the container writes is what the monitor reads back."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from edge_perception.core.config import load_config
from edge_perception.core.health import (
    ERROR,
    OK,
    WARN,
    InputHealth,
    LaneHealth,
    NodeCounts,
    TaskHealth,
    health_of,
    task_level,
)
from edge_perception.core.input_watchdog import InputVerdict
from edge_perception.core.scheduler import DeadlineScheduler

from .fake_clock import FakeClock

FULL = TaskHealth(
    task='traffic_sign', level=WARN, message='missing deadlines (6% recent)', lane='cpu',
    variant='half', period_ms=200.0, deadline_ms=150.0, priority=1, jobs=40, completed=38,
    skipped_frames=3, misses=4, late=2, drops={'stale': 1, 'failed': 1}, overruns=1,
    isolations=0, refused_frames=0, miss_ratio=0.1, recent_miss_ratio=0.062,
    response_p50_ms=41.25, response_p99_ms=120.5, response_max_ms=151.0,
    wcet_estimate_ms=60.125, wcet_margin=1.2, transport_max_ms=2.375, rta_response_ms=98.75,
    rta_wcet_ms=72.25, rta_blocking_ms=12.5, rta_interference_ms=11.0, rta_jitter_ms=3.0,
    schedulable=True,
    input=InputHealth('warn', 2.5), node=NodeCounts(44, 38, {'encoding': 2}, 1),
    engine='onnxruntime')


def test_a_task_health_reads_back_as_written() -> None:
    values = FULL.key_values()
    read = health_of(FULL.name, level=FULL.level, message=FULL.message, hardware_id='cpu',
                     values=values)
    assert read == FULL


def test_the_key_value_format_is_pinned() -> None:
    """rqt users and scripts read these keys: a change must be deliberate."""
    assert FULL.key_values() == {
        'period_ms': '200', 'deadline_ms': '150', 'lane': 'cpu', 'priority': '1',
        'variant': 'half', 'jobs': '40', 'completed': '38', 'skipped_frames': '3',
        'misses': '4', 'late': '2', 'drops': '2', 'drops_failed': '1', 'drops_stale': '1',
        'overruns': '1', 'isolations': '0', 'refused_frames': '0', 'miss_ratio': '0.100',
        'recent_miss_ratio': '0.062', 'response_p50_ms': '41.250',
        'response_p99_ms': '120.500', 'response_max_ms': '151.000',
        'wcet_estimate_ms': '60.125', 'wcet_margin': '1.2', 'transport_max_ms': '2.375',
        'rta_response_ms': '98.750', 'rta_wcet_ms': '72.250', 'rta_blocking_ms': '12.500',
        'rta_interference_ms': '11.000', 'rta_jitter_ms': '3.000',
        'schedulable': 'true', 'engine': 'onnxruntime', 'input': 'warn', 'last_frame_age_s': '2.5',
        'frames_received': '44', 'frames_published': '38', 'bad_frames': '2',
        'bad_frames_encoding': '2', 'mismatched_subscribers': '1'}


def test_unknown_values_read_as_unknown_not_as_a_crash() -> None:
    read = TaskHealth.from_key_values('x', level=OK, message='', hardware_id='gpu',
                                      values={'jobs': 'many', 'response_p99_ms': 'n/a'})
    assert (read.lane, read.jobs, read.schedulable, read.input, read.node) == (
        'gpu', 0, None, None, None)
    assert math.isnan(read.response_p99_ms)


def test_a_lane_health_reads_back_as_written() -> None:
    lane = LaneHealth('gpu', device='cpu', fallback=True, utilisation=0.25,
                      queued={'traffic_light': 1},
                      spinning={'/camera/image_raw': '0.80 ms every 33.3 ms, jitter 2.0 ms'})
    assert lane.key_values()['spinning_thread: /camera/image_raw'].startswith('0.80 ms')
    assert lane.level == WARN
    assert lane.message == 'cpu (CPU fallback: no CUDA device)'
    assert health_of(lane.name, level=lane.level, message=lane.message, hardware_id='gpu',
                     values=lane.key_values()) == lane


def test_statuses_of_other_components_are_not_ours() -> None:
    assert health_of('camera_driver: fps', level=OK, message='', hardware_id='',
                     values={}) is None


@pytest.mark.parametrize(('facts', 'expected'), [
    ({}, (OK, 'meeting deadlines')),
    ({'schedulable': False}, (WARN, 'not schedulable by analysis')),
    ({'untuned': 'edge-perception tune --models m'},
     (WARN, 'untuned: runs on onnxruntime until `edge-perception tune --models m`')),
    ({'untuned': 'tune', 'schedulable': False}, (WARN, 'not schedulable by analysis')),
    ({'recent_miss_ratio': 0.05}, (WARN, 'missing deadlines (5% recent)')),
    ({'recent_miss_ratio': 0.2}, (ERROR, 'missing deadlines (20% recent)')),
    ({'input_level': WARN, 'input_message': 'late', 'schedulable': False}, (WARN, 'late')),
    # A silent camera outranks a clean miss ratio: a task without frames misses nothing.
    ({'input_level': ERROR, 'input_message': 'silent', 'recent_miss_ratio': 0.3},
     (ERROR, 'silent')),
    ({'isolated': 'isolated', 'input_level': ERROR, 'input_message': 'silent'},
     (ERROR, 'isolated')),
    ({'failure': 'model missing', 'isolated': 'isolated'}, (ERROR, 'disabled: model missing')),
])
def test_the_level_policy_reports_the_worst_fact_first(
        facts: dict[str, object], expected: tuple[int, str]) -> None:
    assert task_level(**facts) == expected  # type: ignore[arg-type]


def test_the_scheduler_reports_each_tasks_health(repo_root: Path) -> None:
    clock = FakeClock()
    config = load_config(repo_root / 'config' / 'f1tenth.yaml')
    config = dataclasses.replace(config, tasks=tuple(
        dataclasses.replace(t, lane='cpu', stages=('cpu',)) for t in config.tasks))
    sched = DeadlineScheduler(config, clock=clock, devices={'cpu': 'cpu', 'gpu': 'cpu'})
    sched.release('traffic_sign', clock.work([250]))  # past its deadline
    while sched.lanes['cpu'].run_next():
        pass
    report = {health.task: health for health in sched.task_report(
        failures={'traffic_light': 'no model file'},
        inputs={'traffic_sign': InputVerdict('ok', 'receiving', 1_000_000_000)},
        nodes={'traffic_sign': NodeCounts(1, 1, {})}, now_ns=3_500_000_000)}
    assert report['traffic_light'].level == ERROR
    assert report['traffic_light'].message == 'disabled: no model file'
    sign = report['traffic_sign']
    assert (sign.level, sign.jobs, sign.misses, sign.late) == (ERROR, 1, 1, 1)
    assert sign.input == InputHealth('ok', 2.5)
    assert sign.response_max_ms == pytest.approx(250)
    assert sign.variant == config.task('traffic_sign').variant
