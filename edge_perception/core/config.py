"""The bring-up configuration (config/f1tenth.yaml) as frozen dataclasses.

The YAML file is the single source of truth for tasks and lanes. :func:`load_config` validates
every entry once and fails fast with a :class:`ConfigError` naming the file, the key and the
offending value, so that nodes, the launch file and the CLI never see a half-valid config.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

LANE_NAMES = ('cpu', 'gpu')
# The kinds of task a config may name; tasks/pipelines.py implements each (a test pins both).
PIPELINE_KINDS = ('traffic_light', 'traffic_sign', 'yolo', 'centernet', 'classifier')
# What runs a task's models: auto = TVM where this machine has tuning records, else onnxruntime.
ENGINES = ('auto', 'tvm', 'onnxruntime')
DEVICES = ('cpu', 'cuda')
_TOP_KEYS = frozenset({'model_dir', 'lanes', 'tasks', 'executor_cpus', 'gil_switch_interval_ms',
                       'wcet_margin', 'process_per_lane', 'inputs', 'input_watchdog',
                       'deadline_from_stamp'})
_WATCHDOG_KEYS = frozenset({'warn_periods', 'error_periods'})
_INPUT_KEYS = frozenset({'reliability', 'depth'})
RELIABILITIES = ('reliable', 'best_effort')
_LANE_KEYS = frozenset({'device', 'threads', 'cpus', 'rt_priority', 'nice', 'max_batch'})
_TASK_KEYS = frozenset({
    'name', 'node', 'pipeline', 'period_ms', 'deadline_ms', 'lane', 'models', 'variants',
    'variant', 'input_topic', 'output_topic', 'stages', 'engine',
})
MAX_STAGES = 8


class ConfigError(ValueError):
    """A bring-up configuration file is unreadable or has an invalid entry."""


@dataclass(frozen=True)
class LaneConfig:
    """One execution lane: a worker thread that runs inference on one device."""

    name: str
    device: str
    threads: int
    cpus: tuple[int, ...]
    rt_priority: int | None = None  # SCHED_FIFO 1..99 where permitted
    nice: int | None = None
    max_batch: int = 1  # > 1: jobs waiting for the same model may run as one batch


@dataclass(frozen=True)
class InputQos:
    """How the container subscribes to one camera topic.

    ``reliable`` (the default) matches reliable publishers only, as most camera drivers are;
    ``best_effort`` matches either kind, but FastDDS then loses every frame that does not
    fit the publisher's shared-memory segment unless the publisher runs with the profile in
    config/fastdds_large_frames.xml (docs/performance/2026-12-06-camera-transport.md).
    ``depth``: frames held until the executor takes them; 5 so that frames arriving
    together are all seen and counted (the scheduler, not DDS, decides which become jobs).
    With 1 (the newest frame wins, older ones replaced unseen) a 240 Hz 640x480 camera's
    frames reached the spinning thread sooner (2-3 vs 9-12 ms after DDS received them;
    urgent p50 end to end 9.9 vs 17.5 ms), but it saw fewer of them (248 of 600 at 120 Hz)
    and a period could pass without a frame released (2 of 51 light periods).
    """

    reliability: str = 'reliable'
    depth: int = 5


@dataclass(frozen=True)
class WatchdogConfig:
    """A task's camera silent for ``warn_periods`` of its periods is a WARN on /diagnostics,
    for ``error_periods`` an ERROR (see core.input_watchdog)."""

    warn_periods: float = 5.0
    error_periods: float = 20.0


@dataclass(frozen=True)
class TaskConfig:
    """One periodic perception task, served by one node.

    ``variants`` are ordered from most accurate to fastest; ``variant`` is the one to start with.
    Every model of the task exists in every variant as ``<model_dir>/<model>/<variant>.onnx``.
    ``stages`` names the lane of each stage when every model is split into ``len(stages)``
    sub-models (chosen from profiled times): ``[cpu, cpu]`` shortens blocking on one lane,
    ``[cpu, gpu]`` pipelines consecutive frames over two lanes. Default: one stage on ``lane``.
    """

    name: str
    node: str
    pipeline: str
    period_ms: float
    deadline_ms: float
    lane: str
    models: tuple[str, ...]
    variants: tuple[str, ...]
    variant: str
    input_topic: str
    output_topic: str
    stages: tuple[str, ...] = ()
    engine: str = 'auto'

    def __post_init__(self) -> None:
        if not self.stages:
            object.__setattr__(self, 'stages', (self.lane,))

    @property
    def period_ns(self) -> int:
        return round(self.period_ms * 1e6)

    @property
    def deadline_ns(self) -> int:
        return round(self.deadline_ms * 1e6)


@dataclass(frozen=True)
class PerceptionConfig:
    """The whole bring-up: where models live, the lanes and the tasks.

    ``executor_cpus``: where every thread that is not a lane runs (the spinning thread, DDS,
    thread pools), so that a lane pinned elsewhere has its core to itself; () = anywhere.
    Unused by a lane's own process (``process_per_lane``, see :meth:`for_lane`).
    ``gil_switch_interval_ms``: how long a thread holding the GIL may keep a lane waiting
    (Python's default is 5 ms), set while the lanes run.
    ``wcet_margin``: factor on measured (or profiled) stage times before the response-time
    analysis uses them as WCETs (see :func:`~edge_perception.core.scheduling.padded`).
    ``process_per_lane``: run each lane, with its tasks, in a container process of its own,
    so that the lanes no longer wait for each other's Python (the GIL).
    ``deadline_from_stamp``: a job's deadline counts from its frame's header stamp (when the
    camera took it) where that stamp is on this machine's clock; False: from its arrival
    (a camera on a machine whose clock is not synchronised with this one).
    """

    source: Path
    model_dir: Path
    lanes: tuple[LaneConfig, ...]
    tasks: tuple[TaskConfig, ...]
    executor_cpus: tuple[int, ...] = ()
    gil_switch_interval_ms: float = 0.2
    wcet_margin: float = 1.3
    process_per_lane: bool = False
    inputs: tuple[tuple[str, InputQos], ...] = ()
    input_watchdog: WatchdogConfig = WatchdogConfig()
    deadline_from_stamp: bool = True

    def input_qos(self, topic: str) -> InputQos:
        """The QoS the container subscribes to ``topic`` with (see :class:`InputQos`)."""
        return dict(self.inputs).get(topic, InputQos())

    def task(self, name: str) -> TaskConfig:
        for task in self.tasks:
            if task.name == name:
                return task
        known = ', '.join(t.name for t in self.tasks)
        raise ConfigError(f'{self.source}: no task named {name!r} (known: {known})')

    def model_engines(self) -> dict[str, str]:
        """The engine each model runs on (validated: one per model)."""
        return {model: task.engine for task in self.tasks for model in task.models}

    def container_lanes(self) -> tuple[str | None, ...]:
        """The lane each container process hosts: (None,) = one process for every lane; with
        ``process_per_lane``, every lane some task starts on, in config order."""
        if not self.process_per_lane:
            return (None,)
        used = {task.lane for task in self.tasks}
        return tuple(lane.name for lane in self.lanes if lane.name in used)

    def for_lane(self, lane: str) -> PerceptionConfig:
        """The part of this config one lane's container process runs: that lane and the tasks
        that run on it alone (a task staged over several lanes cannot be split off).

        Its threads are placed by bring-up (the spinning thread on the lane's CPUs, the rest
        anywhere), not by ``executor_cpus``, which keeps other threads off the lanes' cores
        when every lane shares one process.
        """
        tasks = tuple(task for task in self.tasks if task.lane == lane)
        if not tasks:
            raise ConfigError(f'{self.source}: no task runs on lane {lane!r}')
        for task in tasks:
            if set(task.stages) != {lane}:
                raise ConfigError(f'{self.source}: task {task.name} has stages on '
                                  f'{list(task.stages)}, so it cannot run in lane {lane!r} '
                                  f'alone (process_per_lane)')
        lanes = tuple(config for config in self.lanes if config.name == lane)
        return dataclasses.replace(self, lanes=lanes, tasks=tasks, executor_cpus=())


class _Reader:
    """Reads typed values out of parsed YAML, raising errors that name file and key."""

    def __init__(self, source: Path) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> ConfigError:
        return ConfigError(f'{self.source}: {where} {message}')

    def mapping(self, value: Any, where: str, allowed: frozenset[str]) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(where, f'must be a mapping, got {value!r}')
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise self.fail(where, f'has unknown key {unknown[0]!r} (allowed: {sorted(allowed)})')
        return value

    def required(self, entry: Mapping[str, Any], key: str, where: str) -> Any:
        if key not in entry:
            raise self.fail(where, f'is missing required key {key!r}')
        return entry[key]

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(where, f'= {value!r} must be a non-empty string')
        return value

    def choice(self, value: Any, where: str, choices: Sequence[str]) -> str:
        if value not in choices:
            raise self.fail(where, f'= {value!r} is unknown (choose from {list(choices)})')
        return str(value)

    def positive_ms(self, value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(where, f'= {value!r} must be a number of milliseconds')
        if not math.isfinite(value) or value <= 0:
            raise self.fail(where, f'= {value!r} must be positive and finite')
        return float(value)

    def bounded(self, value: Any, where: str, low: float, high: float) -> float:
        if (isinstance(value, bool) or not isinstance(value, int | float)
                or not low <= value <= high):  # NaN fails the range test too
            raise self.fail(where, f'= {value!r} must be a number in [{low}, {high}]')
        return float(value)

    def bounded_ms(self, value: Any, where: str, low: float, high: float) -> float:
        milliseconds = self.positive_ms(value, where)
        if not low <= milliseconds <= high:
            raise self.fail(where, f'= {value!r} must be in [{low}, {high}] ms')
        return milliseconds

    def names(self, value: Any, where: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            raise self.fail(where, f'= {value!r} must be a non-empty list of names')
        items = tuple(self.text(item, f'{where}[{i}]') for i, item in enumerate(value))
        if len(set(items)) != len(items):
            raise self.fail(where, f'= {value!r} lists a name twice')
        return items

    def flag(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(where, f'= {value!r} must be true or false')
        return value

    def optional_int(self, value: Any, where: str, low: int, high: int) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(where, f'= {value!r} must be an integer in [{low}, {high}]')
        return value

    def cpus(self, value: Any, where: str) -> tuple[int, ...]:
        if not isinstance(value, list) or not all(
            isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in value
        ):
            raise self.fail(where, f'= {value!r} must be a list of CPU indices >= 0')
        return tuple(value)

    def topic(self, value: Any, where: str) -> str:
        topic = self.text(value, where)
        if not topic.startswith('/') or ' ' in topic:
            raise self.fail(where, f'= {value!r} must be an absolute topic name without spaces')
        return topic


def _lane(reader: _Reader, name: str, raw: Any) -> LaneConfig:
    where = f'lanes.{name}'
    reader.choice(name, 'lanes', LANE_NAMES)
    entry = reader.mapping(raw, where, _LANE_KEYS)
    threads = entry.get('threads', 1)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise reader.fail(f'{where}.threads', f'= {threads!r} must be an integer >= 1')
    cpus = reader.cpus(entry.get('cpus', []), f'{where}.cpus')
    device = reader.choice(entry.get('device', 'cpu'), f'{where}.device', DEVICES)
    rt_priority = reader.optional_int(entry.get('rt_priority'), f'{where}.rt_priority', 1, 99)
    nice = reader.optional_int(entry.get('nice'), f'{where}.nice', -20, 19)
    max_batch = reader.optional_int(entry.get('max_batch', 1), f'{where}.max_batch', 1, 16)
    return LaneConfig(name=name, device=device, threads=threads, cpus=cpus,
                      rt_priority=rt_priority, nice=nice, max_batch=max_batch or 1)


def _inputs(reader: _Reader, raw: Any, tasks: Sequence[TaskConfig]
            ) -> tuple[tuple[str, InputQos], ...]:
    if not isinstance(raw, Mapping):
        raise reader.fail('inputs', f'= {raw!r} must map input topics to their QoS')
    read = {task.input_topic for task in tasks}
    inputs = []
    for topic, value in raw.items():
        where = f'inputs.{topic}'
        if topic not in read:
            raise reader.fail(where, f'is read by no task (input topics: {sorted(read)})')
        entry = reader.mapping(value, where, _INPUT_KEYS)
        reliability = reader.choice(entry.get('reliability', InputQos.reliability),
                                    f'{where}.reliability', RELIABILITIES)
        depth = reader.optional_int(entry.get('depth', InputQos.depth), f'{where}.depth', 1, 100)
        inputs.append((str(topic), InputQos(reliability, depth or 1)))
    return tuple(inputs)


def _watchdog(reader: _Reader, raw: Any) -> WatchdogConfig:
    entry = reader.mapping(raw, 'input_watchdog', _WATCHDOG_KEYS)
    warn = reader.bounded(entry.get('warn_periods', WatchdogConfig.warn_periods),
                          'input_watchdog.warn_periods', 1.0, 10_000.0)
    error = reader.bounded(entry.get('error_periods', WatchdogConfig.error_periods),
                           'input_watchdog.error_periods', warn, 10_000.0)
    return WatchdogConfig(warn, error)


def _task(reader: _Reader, index: int, raw: Any, lanes: Sequence[str]) -> TaskConfig:
    where = f'tasks[{index}]'
    entry = reader.mapping(raw, where, _TASK_KEYS)

    def get(key: str) -> Any:
        return reader.required(entry, key, where)

    name = reader.text(get('name'), f'{where}.name')
    where = f'tasks[{index}] ({name})'
    period_ms = reader.positive_ms(get('period_ms'), f'{where}.period_ms')
    deadline_ms = reader.positive_ms(get('deadline_ms'), f'{where}.deadline_ms')
    if deadline_ms > period_ms:
        raise reader.fail(
            f'{where}.deadline_ms', f'= {deadline_ms:g} must not exceed period_ms = {period_ms:g}'
        )
    variants = reader.names(get('variants'), f'{where}.variants')
    variant = reader.choice(get('variant'), f'{where}.variant', variants)
    lane = reader.choice(get('lane'), f'{where}.lane', lanes)
    stages = entry.get('stages', [lane])
    if not isinstance(stages, list) or not 1 <= len(stages) <= MAX_STAGES:
        raise reader.fail(f'{where}.stages',
                          f'= {stages!r} must be a list of 1 to {MAX_STAGES} lane names')
    if stages[0] != lane:
        raise reader.fail(f'{where}.stages', f'= {stages!r} must start on the task lane {lane!r}')
    return TaskConfig(
        name=name,
        node=reader.text(get('node'), f'{where}.node'),
        pipeline=reader.choice(get('pipeline'), f'{where}.pipeline', PIPELINE_KINDS),
        period_ms=period_ms,
        deadline_ms=deadline_ms,
        lane=lane,
        models=reader.names(get('models'), f'{where}.models'),
        variants=variants,
        variant=variant,
        input_topic=reader.topic(get('input_topic'), f'{where}.input_topic'),
        output_topic=reader.topic(get('output_topic'), f'{where}.output_topic'),
        stages=tuple(reader.choice(stage, f'{where}.stages[{i}]', lanes)
                     for i, stage in enumerate(stages)),
        engine=reader.choice(entry.get('engine', 'auto'), f'{where}.engine', ENGINES),
    )


def parse_config(raw: Any, *, source: Path) -> PerceptionConfig:
    """Validate already-parsed YAML; relative paths resolve against ``source``'s folder."""
    reader = _Reader(source)
    top = reader.mapping(raw, 'top level', _TOP_KEYS)
    model_dir = Path(reader.text(reader.required(top, 'model_dir', 'top level'), 'model_dir'))
    if not model_dir.is_absolute():
        model_dir = (source.parent / model_dir).resolve()
    raw_lanes = reader.required(top, 'lanes', 'top level')
    if not isinstance(raw_lanes, Mapping) or not raw_lanes:
        raise reader.fail('lanes', f'= {raw_lanes!r} must map lane names to lane settings')
    lanes = tuple(_lane(reader, str(name), value) for name, value in raw_lanes.items())
    raw_tasks = reader.required(top, 'tasks', 'top level')
    if not isinstance(raw_tasks, list) or not raw_tasks:
        raise reader.fail('tasks', f'= {raw_tasks!r} must be a non-empty list')
    lane_names = [lane.name for lane in lanes]
    tasks = tuple(_task(reader, i, value, lane_names) for i, value in enumerate(raw_tasks))
    for key in ('name', 'node', 'output_topic'):
        seen = [getattr(task, key) for task in tasks]
        duplicates = sorted({value for value in seen if seen.count(value) > 1})
        if duplicates:
            raise reader.fail('tasks', f'use {key} {duplicates[0]!r} more than once')
    engines: dict[str, TaskConfig] = {}
    for task in tasks:  # a model is loaded once per process: on one engine
        for model in task.models:
            other = engines.setdefault(model, task)
            if other.engine != task.engine:
                raise reader.fail('tasks', f'{other.name} runs model {model!r} on engine '
                                  f'{other.engine}, {task.name} on {task.engine}: a model '
                                  'runs on one engine')
    config = PerceptionConfig(
        source=source, model_dir=model_dir, lanes=lanes, tasks=tasks,
        executor_cpus=reader.cpus(top.get('executor_cpus', []), 'executor_cpus'),
        gil_switch_interval_ms=reader.bounded_ms(top.get('gil_switch_interval_ms',
                                                         PerceptionConfig.gil_switch_interval_ms),
                                                 'gil_switch_interval_ms', 0.01, 5.0),
        wcet_margin=reader.bounded(top.get('wcet_margin', PerceptionConfig.wcet_margin),
                                   'wcet_margin', 1.0, 4.0),
        process_per_lane=reader.flag(top.get('process_per_lane', False), 'process_per_lane'),
        inputs=_inputs(reader, top.get('inputs', {}), tasks),
        input_watchdog=_watchdog(reader, top.get('input_watchdog', {})),
        deadline_from_stamp=reader.flag(top.get('deadline_from_stamp', True),
                                        'deadline_from_stamp'))
    if config.process_per_lane:
        for lane in {task.lane for task in tasks}:
            config.for_lane(lane)  # every task must fit in one lane's process
    return config


def default_config_path() -> Path:
    """config/f1tenth.yaml of this source tree, else of the installed ROS 2 package share."""
    source_tree = Path(__file__).resolve().parents[2] / 'config' / 'f1tenth.yaml'
    if source_tree.is_file():
        return source_tree
    try:
        from ament_index_python.packages import get_package_share_directory
    except ImportError:
        return source_tree
    return Path(get_package_share_directory('edge_perception')) / 'config' / 'f1tenth.yaml'


def load_config(path: str | Path) -> PerceptionConfig:
    """Read and validate a bring-up YAML file.

    :raises ConfigError: if the file cannot be read or any entry is invalid.
    """
    source = Path(path).resolve()
    try:
        raw = yaml.safe_load(source.read_text(encoding='utf-8'))
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f'Cannot read config {source}: {err}') from None
    return parse_config(raw, source=source)
