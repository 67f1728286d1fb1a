"""The container process exits cleanly on SIGINT and SIGTERM: no hung lane threads."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..conftest import committed_config, launch, write_config


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_container_stops_on_signal(sig: signal.Signals) -> None:
    process, lines = launch()
    try:
        started = time.monotonic()
        process.send_signal(sig)
        code = process.wait(timeout=30)
        stopped_in = time.monotonic() - started
    finally:
        process.kill()
    assert code == 0, ''.join(lines)
    assert stopped_in < 30
    assert 'Traceback' not in ''.join(lines)


def test_a_container_per_lane_stops_with_the_launch(tmp_path: Path) -> None:
    config = write_config({**committed_config(), 'process_per_lane': True},
                          tmp_path / 'per_lane.yaml')
    process, lines = launch(str(config), containers=2)
    try:
        assert len(containers_of(config)) == 3  # the launch, and a container per lane
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
    finally:
        process.kill()
    assert code == 0, ''.join(lines)
    assert containers_of(config) == []  # the containers stopped with it
    assert 'Traceback' not in ''.join(lines)
    hosted = [line for line in lines if 'hosting' in line]
    assert any('traffic_light_detector' in line and 'sign' not in line for line in hosted)


def test_a_signal_during_start_up_ends_everything_at_once(tmp_path: Path) -> None:
    """SIGTERM while the container loads its models: it used to print a traceback
    (NotInitializedException, RCLError: failed to create timer) or take 30 s."""
    config = write_config(committed_config(), tmp_path / 'starting.yaml')
    process = subprocess.Popen(
        [sys.executable, '-m', 'edge_perception.cli', 'launch', str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    assert 'launching perception_container' in process.stdout.readline()
    give_up = time.monotonic() + 30
    while not [pid for pid in containers_of(config) if pid != process.pid]:
        assert time.monotonic() < give_up, 'no container process started'
        time.sleep(0.05)
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=10)
    finally:
        process.kill()
    stopped_in = time.monotonic() - started
    output = process.stdout.read()
    assert (code, 'Traceback' in output) == (0, False), output
    assert stopped_in < 2.5  # within 2 s, and the test's own process start-up
    assert containers_of(config) == []


def test_containers_die_with_a_killed_launch(tmp_path: Path) -> None:
    """kill -KILL of the launch left its container running, still publishing."""
    config = write_config(committed_config(), tmp_path / 'orphans.yaml')
    process = subprocess.Popen(
        [sys.executable, '-m', 'edge_perception.cli', 'launch', str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    give_up = time.monotonic() + 30
    while len(containers_of(config)) < 2:
        assert time.monotonic() < give_up, 'no container process started'
        time.sleep(0.05)
    process.kill()
    process.wait()
    give_up = time.monotonic() + 5
    while containers_of(config):
        assert time.monotonic() < give_up, f'left running: {containers_of(config)}'
        time.sleep(0.05)


def containers_of(config: Path) -> list[int]:
    """Processes running a container of ``config``."""
    found = []
    for entry in Path('/proc').iterdir():
        try:
            command = (entry / 'cmdline').read_bytes().split(b'\0')
        except OSError:
            continue  # not a process, or gone
        if any(str(config).encode() in part for part in command):
            found.append(int(entry.name))
    return found
