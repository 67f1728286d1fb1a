"""The DeadlineExecutor over real rclpy, real TVM models: priorities hold under overload,
stale jobs are dropped, variants adapt, /diagnostics and miss events reach subscribers."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.node import Node
from sensor_msgs.msg import Image

from edge_perception.core.config import load_config
from edge_perception.ros.container import PerceptionContainer
from edge_perception.ros.image_conversion import encode_bgr8
from edge_perception.ros.message_adapter import DEADLINE_MISS_TOPIC
from edge_perception.runtime.bring_up import busy_frame, profile_stages
from edge_perception.runtime.manifest import Manifest
from edge_perception.runtime.task_models import TaskModels, cpu_placements
from edge_perception.runtime.tvm.store import ModelStore, default_cache_dir
from edge_perception.synthetic.scenes import generate_frame

from ..conftest import committed_config, write_config
from .conftest import spin_until

# The shared deadline's floor: on a shared 2-core VM a lane thread stalls for a few ms at
# times (faster models took the deadline to ~7 ms, and one full run dropped one urgent job).
MIN_DEADLINE_MS = 9.0
# What all tasks need per period, in deadlines (4 sign tasks at 3x the urgent response left
# the lane too lightly loaded to miss at times; 6 made 1.7).
LOAD = 1.75


@dataclass(frozen=True)
class Overload:
    """A one-lane task set derived from this machine's measured stage times.

    lights (quarter) and ``low_tasks`` sign tasks (full, added by config alone) share one
    deadline D = period, so the tie-break by name makes lights the highest priority. D is three
    times lights' worst profiled response (its own time plus one blocking sign stage: inside
    the container, beside the spinning thread on 2 cores, both took up to 1.5x their profiled
    times), at least MIN_DEADLINE_MS, while all tasks together need LOAD times D per period:
    the lane is overloaded, lights is not.
    """

    config: Path
    deadline_ms: float
    low_tasks: int


def overload_config(repo_root: Path, tmp_path: Path) -> Overload:
    config = load_config(repo_root / 'config' / 'f1tenth.yaml')
    store = ModelStore(Manifest.load(config.model_dir), cache_dir=default_cache_dir())
    frame = busy_frame()

    def stages_ms(task: str, variant: str) -> tuple[float, ...]:
        models = TaskModels(config.task(task), store, lanes=cpu_placements(config))
        models.variant = variant
        return tuple(ns / 1e6 for ns in profile_stages(models.pipeline, models, frame))

    light, sign = stages_ms('traffic_light', 'quarter'), stages_ms('traffic_sign', 'full')
    deadline = max(round(3 * (sum(light) + max(sign)), 1), MIN_DEADLINE_MS)
    low_tasks = max(6, math.ceil((LOAD * deadline - sum(light)) / sum(sign)))
    raw = committed_config()
    lights, signs = raw['tasks']
    lights.update(lane='cpu', period_ms=deadline, deadline_ms=deadline, variant='quarter')
    raw['tasks'] = [lights] + [
        {**signs, 'name': f'traffic_sign_{i}', 'node': f'sign_recognizer_{i}', 'lane': 'cpu',
         'period_ms': deadline, 'deadline_ms': deadline, 'variant': 'full',
         'output_topic': f'/perception/traffic_signs_{i}'}
        for i in range(low_tasks)]
    return Overload(write_config(raw, tmp_path / 'overload.yaml'), deadline, low_tasks)


@pytest.fixture
def overload(repo_root: Path, tmp_path: Path) -> Overload:
    return overload_config(repo_root, tmp_path)


@pytest.fixture
def overloaded(overload: Overload, ros_context: Context) -> Iterator[PerceptionContainer]:
    container = PerceptionContainer(load_config(overload.config), context=ros_context,
                                    select_variants=False, adapt_variants=False)
    yield container
    container.destroy()


class Camera:
    """Publishes one synthetic frame every ``period_s`` from a timer on the same executor."""

    def __init__(self, context: Context, container: PerceptionContainer,
                 period_s: float) -> None:
        self.node = Node('test_camera', context=context)
        self.publisher = self.node.create_publisher(Image, '/camera/image_raw', 10)
        self.msg = Image()
        encode_bgr8(generate_frame('demo', 3).image, self.msg)
        self.running = True
        container.executor.add_node(self.node)
        # The container subscribes once per camera topic for all its task nodes.
        spin_until(container.executor, lambda: self.publisher.get_subscription_count() >= 1)
        self.node.create_timer(period_s, self._tick)

    def _tick(self) -> None:
        if self.running:
            self.msg.header.stamp = self.node.get_clock().now().to_msg()
            self.publisher.publish(self.msg)


def test_high_priority_task_meets_deadlines_while_the_lane_overloads(
        ros_context: Context, overload: Overload, overloaded: PerceptionContainer) -> None:
    camera = Camera(ros_context, overloaded, period_s=overload.deadline_ms / 2000)
    scheduler = overloaded.scheduler
    lights = scheduler.stats['traffic_light']
    spin_until(overloaded.executor, lambda: lights.completed >= 15, timeout_s=180)
    camera.running = False
    assert scheduler.priorities['traffic_light'] == 0
    # What the scheduler decided, not how fast this machine was: the urgent task lost no
    # job while the others lost many. Its misses and response times under overload are
    # the benchmark's and the soak's figures (a shared VM's pauses are not the executor's).
    assert sum(lights.drops.values()) == 0, lights
    low = [scheduler.stats[f'traffic_sign_{i}'] for i in range(overload.low_tasks)]
    assert sum(s.misses for s in low) > 0
    assert sum(s.drops['stale'] + s.drops['displaced'] for s in low) > 0
    # Nothing piles up: each task has at most one job waiting.
    assert all(n <= 1 for n in scheduler.lanes['cpu'].queued().values())


def test_variants_downgrade_under_load_and_recover_after(overload: Overload,
                                                        ros_context: Context) -> None:
    container = PerceptionContainer(load_config(overload.config), context=ros_context,
                                    select_variants=False, adapt_variants=True)
    try:
        camera = Camera(ros_context, container, period_s=overload.deadline_ms / 2000)
        lowest = f'traffic_sign_{overload.low_tasks - 1}'
        # The container's 1 Hz adaptation timer reacts to the load on its own.
        spin_until(container.executor, lambda: container.variants() != {
            **dict.fromkeys(container.variants(), 'full'), 'traffic_light': 'quarter'},
            timeout_s=120)
        changed = {task: v for task, v in container.variants().items()
                   if v != ('quarter' if task == 'traffic_light' else 'full')}
        # The overloaded lane gives way, its lowest-priority task among the first, to cheaper
        # variants only (the light task runs its cheapest already).
        assert lowest in changed, changed
        node = next(n for n in container.nodes if n.task.name == lowest)
        assert node.get_parameter('variant').value == changed[lowest]
        camera.running = False  # the load step ends: calm windows follow, variants recover
        spin_until(container.executor,
                   lambda: all(container.variants()[f'traffic_sign_{i}'] == 'full'
                               for i in range(overload.low_tasks)), timeout_s=120)
    finally:
        container.destroy()


def test_diagnostics_and_miss_events_reach_another_node(
        ros_context: Context, overload: Overload, overloaded: PerceptionContainer) -> None:
    listener = Node('diagnostics_listener', context=ros_context)
    overloaded.executor.add_node(listener)
    arrays: list[DiagnosticArray] = []
    events: list[Any] = []
    listener.create_subscription(DiagnosticArray, '/diagnostics', arrays.append, 10)
    listener.create_subscription(overloaded.adapter.deadline_miss_type(), DEADLINE_MISS_TOPIC,
                                 events.append, 50)
    camera = Camera(ros_context, overloaded, period_s=overload.deadline_ms / 2000)
    lowest = f'traffic_sign_{overload.low_tasks - 1}'
    signs = overloaded.scheduler.stats[lowest]
    spin_until(overloaded.executor, lambda: signs.misses >= 3 and len(events) >= 3,
               timeout_s=180)
    camera.running = False
    overloaded.publish_diagnostics()
    spin_until(overloaded.executor, lambda: bool(arrays))
    statuses = {s.name: s for s in arrays[-1].status}
    assert set(statuses) == {
        'edge_perception: traffic_light', 'edge_perception: lane cpu',
        'edge_perception: lane gpu', *(f'edge_perception: traffic_sign_{i}'
                                       for i in range(overload.low_tasks))}
    sign = statuses[f'edge_perception: {lowest}']
    values = {kv.key: kv.value for kv in sign.values}
    recent = float(values['recent_miss_ratio'])
    assert recent >= 0.05  # starved by the overload
    assert sign.level == (b'\x02' if recent >= 0.2 else b'\x01')  # ERROR / WARN
    assert sign.hardware_id == 'cpu'
    for key in ('period_ms', 'deadline_ms', 'lane', 'variant', 'jobs', 'misses', 'drops',
                'miss_ratio', 'response_p50_ms', 'response_p99_ms', 'response_max_ms',
                'wcet_estimate_ms', 'schedulable'):
        assert key in values, key
    assert int(values['misses']) >= 3
    # The urgent task misses nothing; its level then follows the analysis alone (a WCET outlier
    # on a noisy machine can make the RTA say "no" without any miss: WARN, never ERROR).
    light = statuses['edge_perception: traffic_light']
    light_values = {kv.key: kv.value for kv in light.values}
    assert light_values['recent_miss_ratio'] in ('0.000', 'n/a')
    if light_values['schedulable'] == 'false':
        assert (light.level, light.message) == (b'\x01', 'not schedulable by analysis')
    else:
        assert (light.level, light.message) == (b'\x00', 'meeting deadlines')
    lane = {kv.key: kv.value for kv in statuses['edge_perception: lane cpu'].values}
    assert 0.0 < float(lane['utilisation']) <= 1.0
    missed = {event.task for event in events}
    assert lowest in missed
    assert 'traffic_light' not in missed
