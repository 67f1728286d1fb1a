"""Frames of a real camera's size reach the container from another process, every one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge_perception.bench import transport
from edge_perception.core.config import InputQos
from edge_perception.ros.container import PerceptionContainer
from edge_perception.tools.bags import write_synthetic_bag

from .conftest import spin_until

pytestmark = pytest.mark.integration

FRAMES = 30


def test_a_1280x720_replay_reaches_the_container_frame_for_frame(
        container: PerceptionContainer, tmp_path: Path) -> None:
    """The replay publishes as most camera drivers do (reliable, depth 10); with the
    sensor-data subscription the container had, about 10 of 30 such frames arrived; the
    player exiting before its last frame was acknowledged lost that one."""
    bag = tmp_path / 'hd_drive'
    write_synthetic_bag(bag, frames=FRAMES, rate_hz=30.0, resolution=(1280, 720))
    lights = next(node for node in container.nodes if node.task.name == 'traffic_light')
    player = subprocess.Popen([sys.executable, '-m', 'edge_perception.cli', 'replay',
                               str(bag), '--wait-for-subscriber', '30'],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        spin_until(container.executor, lambda: player.poll() is not None, timeout_s=60)
        spin_until(container.executor, lambda: lights.frames_received >= FRAMES, timeout_s=20,
                   what=lambda: f'{lights.frames_received} of {FRAMES} frames received')
    finally:
        player.kill()
        _, errors = player.communicate()
    assert player.returncode == 0, errors
    assert lights.frames_received == FRAMES
    assert sum(lights.bad_frames.values()) == 0


@pytest.mark.parametrize('case', [
    transport.Case('reliable', InputQos()),
    transport.Case('best_effort', InputQos('best_effort', 5), profile=True),
], ids=lambda case: case.name)
def test_frames_of_every_common_size_cross_between_processes(case: transport.Case) -> None:
    """The default subscription with a reliable camera, and a best-effort camera when both
    sides run with the shipped FastDDS profile: every frame up to 1920x1080 arrives."""
    rows = transport.measure(frames=FRAMES, cases=[case], progress=lambda _: None)
    assert [(row.width, row.height, row.received) for row in rows] == [
        (width, height, FRAMES) for width, height in transport.SIZES]
