"""config/f1tenth.yaml loading: the committed file is valid, every bad entry is named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_perception.core.config import ConfigError, InputQos, load_config

VALID: dict[str, Any] = {
    'model_dir': 'zoo',
    'lanes': {'cpu': {'device': 'cpu', 'threads': 1, 'cpus': [0]},
              'gpu': {'device': 'cuda', 'threads': 2, 'cpus': []}},
    'tasks': [{
        'name': 'lights', 'node': 'light_node', 'pipeline': 'traffic_light',
        'period_ms': 50, 'deadline_ms': 40, 'lane': 'gpu', 'models': ['detector', 'light_state'],
        'variants': ['full', 'half'], 'variant': 'half',
        'input_topic': '/camera/image_raw', 'output_topic': '/lights',
    }],
}


def write(tmp_path: Path, raw: Any) -> Path:
    for variant in ('full', 'half'):
        model = tmp_path / 'zoo' / 'detector' / f'{variant}.onnx'
        model.parent.mkdir(parents=True, exist_ok=True)
        model.write_bytes(b'onnx')
    path = tmp_path / 'config.yaml'
    path.write_text(yaml.safe_dump(raw))
    return path


def with_task(**changes: Any) -> dict[str, Any]:
    task = {**VALID['tasks'][0], **changes}
    return {**VALID, 'tasks': [{k: v for k, v in task.items() if v is not None}]}


def test_committed_config_is_valid(repo_root: Path) -> None:
    config = load_config(repo_root / 'config' / 'f1tenth.yaml')
    assert [t.name for t in config.tasks] == ['traffic_light', 'traffic_sign']
    assert {lane.name for lane in config.lanes} == {'cpu', 'gpu'}
    assert all(t.deadline_ms <= t.period_ms for t in config.tasks)


def test_valid_config_round_trips_into_dataclasses(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID))
    task = config.task('lights')
    assert task.period_ns == 50_000_000
    assert task.deadline_ns == 40_000_000
    assert task.variants == ('full', 'half')
    assert config.model_dir == tmp_path / 'zoo'  # relative to the config file
    assert config.lanes[0].cpus == (0,)
    assert config.executor_cpus == ()  # default: the executor's threads run anywhere
    assert config.gil_switch_interval_ms == 0.2
    assert config.wcet_margin == 1.3
    assert task.stages == ('gpu',)  # default: one stage on the task's lane
    assert config.container_lanes() == (None,)  # default: one process for every lane


def test_process_per_lane_gives_each_used_lane_its_tasks(tmp_path: Path) -> None:
    signs = {**VALID['tasks'][0], 'name': 'signs', 'node': 'sign_node', 'lane': 'cpu',
             'output_topic': '/signs'}
    raw = {**VALID, 'process_per_lane': True, 'tasks': [VALID['tasks'][0], signs]}
    config = load_config(write(tmp_path, raw))
    assert config.container_lanes() == ('cpu', 'gpu')  # config order of the lanes
    gpu = config.for_lane('gpu')
    assert [t.name for t in gpu.tasks] == ['lights']
    assert [lane.name for lane in gpu.lanes] == ['gpu']
    assert config.for_lane('cpu').tasks[0].name == 'signs'
    # A lane's process places its threads itself (bring-up): executor_cpus is for one process.
    pinned = load_config(write(tmp_path, {**raw, 'executor_cpus': [1]}))
    assert pinned.executor_cpus == (1,)
    assert pinned.for_lane('cpu').executor_cpus == ()
    only_lights = load_config(write(tmp_path, {**raw, 'tasks': [VALID['tasks'][0]]}))
    assert only_lights.container_lanes() == ('gpu',)  # a lane without tasks gets no process
    with pytest.raises(ConfigError, match="no task runs on lane 'cpu'"):
        only_lights.for_lane('cpu')


def test_input_qos_is_reliable_depth_5_unless_configured(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, VALID)).input_qos('/camera/image_raw') == InputQos(
        'reliable', 5)
    raw = {**VALID, 'inputs': {'/camera/image_raw': {'reliability': 'best_effort', 'depth': 2}}}
    assert load_config(write(tmp_path, raw)).input_qos('/camera/image_raw') == InputQos(
        'best_effort', 2)


def test_stages_name_the_lane_of_each_model_stage(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, with_task(stages=['gpu', 'cpu', 'gpu'])))
    assert config.task('lights').stages == ('gpu', 'cpu', 'gpu')


@pytest.mark.parametrize(('raw', 'match'), [
    ({**VALID, 'extra': 1}, r"top level has unknown key 'extra'"),
    (with_task(colour='red'), r"tasks\[0\] has unknown key 'colour'"),
    (with_task(period_ms=-5), r'period_ms = -5 must be positive'),
    (with_task(period_ms='fast'), r"period_ms = 'fast' must be a number"),
    (with_task(deadline_ms=60), r'deadline_ms = 60 must not exceed period_ms = 50'),
    (with_task(lane='tpu'), r"lane = 'tpu' is unknown"),
    (with_task(pipeline='lidar'), r"pipeline = 'lidar' is unknown"),
    (with_task(variant='tiny'), r"variant = 'tiny' is unknown"),
    (with_task(input_topic='camera'), r"input_topic = 'camera' must be an absolute topic"),
    (with_task(node=None), r"tasks\[0\] \(lights\) is missing required key 'node'"),
    ({**VALID, 'lanes': {'npu': {'device': 'cpu'}}}, r"lanes = 'npu' is unknown"),
    ({**VALID, 'lanes': {'cpu': {'threads': 0}}}, r'lanes.cpu.threads = 0 must be an integer'),
    ({**VALID, 'lanes': {'cpu': {'rt_priority': 120}}},
     r'lanes.cpu.rt_priority = 120 must be an integer in \[1, 99\]'),
    ({**VALID, 'lanes': {'cpu': {'max_batch': 0}}},
     r'lanes.cpu.max_batch = 0 must be an integer in \[1, 16\]'),
    ({**VALID, 'lanes': {'cpu': {'cpus': [-1]}}}, r'lanes.cpu.cpus = \[-1\] must be a list'),
    ({**VALID, 'executor_cpus': 1}, r'executor_cpus = 1 must be a list of CPU indices'),
    ({**VALID, 'gil_switch_interval_ms': 50}, r'gil_switch_interval_ms = 50 must be in \[0.01'),
    ({**VALID, 'gil_switch_interval_ms': 'fast'}, r'gil_switch_interval_ms = .fast. must be a '),
    ({**VALID, 'wcet_margin': 0.8}, r'wcet_margin = 0.8 must be a number in \[1.0, 4.0\]'),
    ({**VALID, 'wcet_margin': float('nan')}, r'wcet_margin = nan must be a number in'),
    ({**VALID, 'tasks': VALID['tasks'] * 2}, r"use name 'lights' more than once"),
    ({**VALID, 'tasks': [VALID['tasks'][0], {**VALID['tasks'][0], 'name': 'b', 'node': 'b'}]},
     r"use output_topic '/lights' more than once"),
    ({**VALID, 'inputs': {'/camera/other': {}}},
     r"inputs./camera/other is read by no task \(input topics: \['/camera/image_raw'\]\)"),
    ({**VALID, 'inputs': {'/camera/image_raw': {'reliability': 'sometimes'}}},
     r"inputs./camera/image_raw.reliability = 'sometimes' is unknown"),
    ({**VALID, 'inputs': {'/camera/image_raw': {'depth': 0}}},
     r'inputs./camera/image_raw.depth = 0 must be an integer in \[1, 100\]'),
    ({**VALID, 'inputs': {'/camera/image_raw': {'history': 'all'}}},
     r"inputs./camera/image_raw has unknown key 'history'"),
    ({**VALID, 'inputs': ['/camera/image_raw']}, r'inputs = .* must map input topics'),
    ({**VALID, 'input_watchdog': {'warn_periods': 0}},
     r'input_watchdog.warn_periods = 0 must be a number in \[1.0, 10000.0\]'),
    ({**VALID, 'input_watchdog': {'warn_periods': 10, 'error_periods': 5}},
     r'input_watchdog.error_periods = 5 must be a number in \[10.0, 10000.0\]'),
    (with_task(stages='gpu'), r"stages = 'gpu' must be a list of 1 to 8 lane names"),
    (with_task(stages=['gpu', 'npu']), r"stages\[1\] = 'npu' is unknown"),
    (with_task(stages=['cpu', 'gpu']), r"stages = \['cpu', 'gpu'\] must start on the task lane"),
    ({**VALID, 'process_per_lane': 'yes'}, r"process_per_lane = 'yes' must be true or false"),
    ({**with_task(stages=['gpu', 'cpu']), 'process_per_lane': True},
     r"task lights has stages on \['gpu', 'cpu'\], so it cannot run in lane 'gpu' alone"),
    ([1, 2], r'top level must be a mapping'),
])
def test_bad_entries_are_named(tmp_path: Path, raw: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(write(tmp_path, raw))


def test_unreadable_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r'Cannot read config .*nowhere.yaml'):
        load_config(tmp_path / 'nowhere.yaml')


def test_invalid_yaml_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / 'broken.yaml'
    path.write_text('tasks: [unclosed')
    with pytest.raises(ConfigError, match=r'Cannot read config .*broken.yaml'):
        load_config(path)


def test_unknown_task_lookup_lists_known_tasks(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID))
    with pytest.raises(ConfigError, match=r"no task named 'signs' \(known: lights\)"):
        config.task('signs')


def test_every_pipeline_kind_a_config_may_name_has_a_pipeline() -> None:
    from edge_perception.core.config import PIPELINE_KINDS
    from edge_perception.tasks.pipelines import PIPELINES

    assert set(PIPELINES) == set(PIPELINE_KINDS)
