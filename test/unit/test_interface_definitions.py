"""msg/*.msg parse with rosidl_adapter (shipped in the ROS 2 wheels) and match the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rosidl_adapter.parser import parse_message_file

from edge_perception.tasks.classes import LIGHT_STATES

MESSAGES = ('TrafficLight', 'TrafficLightArray', 'TrafficSign', 'TrafficSignArray',
            'DeadlineMiss', 'Point2D', 'Pose2D', 'BoundingBox2D', 'ObjectHypothesis',
            'ObjectHypothesisWithPose', 'Detection', 'DetectionArray')


def parse(repo_root: Path, name: str):  # type: ignore[no-untyped-def]
    return parse_message_file('edge_perception_msgs', str(repo_root / 'msg' / f'{name}.msg'))


@pytest.mark.parametrize('name', MESSAGES)
def test_message_parses(repo_root: Path, name: str) -> None:
    spec = parse(repo_root, name)
    assert spec.base_type.type == name
    assert spec.fields


def test_light_state_constants_match_class_list(repo_root: Path) -> None:
    constants = {c.name: c.value for c in parse(repo_root, 'TrafficLight').constants}
    assert constants == {f'STATE_{s.upper()}': i for i, s in enumerate(LIGHT_STATES)}


def test_arrays_carry_header_variant_and_items(repo_root: Path) -> None:
    for name, item in (('TrafficLightArray', 'TrafficLight'), ('TrafficSignArray', 'TrafficSign')):
        fields = {f.name: f.type for f in parse(repo_root, name).fields}
        assert str(fields['header']) == 'std_msgs/Header'
        assert str(fields['variant']) == 'string'
        assert any(str(t) == f'edge_perception_msgs/{item}[]' for t in fields.values())


def test_deadline_miss_fields(repo_root: Path) -> None:
    fields = {f.name: str(f.type) for f in parse(repo_root, 'DeadlineMiss').fields}
    assert fields == {
        'header': 'std_msgs/Header', 'task': 'string', 'lane': 'string', 'variant': 'string',
        'job_id': 'uint64', 'deadline': 'builtin_interfaces/Duration',
        'response_time': 'builtin_interfaces/Duration', 'dropped': 'bool',
    }


def test_colcon_interface_package_generates_every_message(repo_root: Path) -> None:
    cmake = (repo_root / 'edge_perception_msgs' / 'CMakeLists.txt').read_text()
    listed = set(re.findall(r'"msg/(\w+)\.msg"', cmake))
    assert listed == set(MESSAGES) == {p.stem for p in (repo_root / 'msg').glob('*.msg')}
    assert (repo_root / 'edge_perception_msgs' / 'msg').resolve() == repo_root / 'msg'


def test_generic_detections_are_laid_out_as_vision_msgs(repo_root: Path) -> None:
    """Code reading DetectionArray ports to vision_msgs/Detection2DArray by renaming types."""
    def fields(name: str) -> dict[str, str]:
        return {f.name: str(f.type) for f in parse(repo_root, name).fields}

    assert fields('DetectionArray') == {'header': 'std_msgs/Header', 'variant': 'string',
                                        'detections': 'edge_perception_msgs/Detection[]'}
    assert fields('Detection') == {
        'header': 'std_msgs/Header', 'id': 'string', 'bbox': 'edge_perception_msgs/BoundingBox2D',
        'results': 'edge_perception_msgs/ObjectHypothesisWithPose[]'}
    assert fields('BoundingBox2D') == {'center': 'edge_perception_msgs/Pose2D',
                                       'size_x': 'float64', 'size_y': 'float64'}
    assert fields('ObjectHypothesis') == {'class_id': 'string', 'score': 'float64'}
