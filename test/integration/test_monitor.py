"""`edge-perception monitor` in another process follows a real container over DDS."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from edge_perception.ros.container import PerceptionContainer


def test_monitor_process_shows_the_containers_tasks(container: PerceptionContainer,
                                                    tmp_path: Path) -> None:
    monitor = subprocess.Popen(
        [sys.executable, '-m', 'edge_perception.cli', 'monitor', '--duration', '6',
         '--snapshot', str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        give_up = time.monotonic() + 60
        while monitor.poll() is None and time.monotonic() < give_up:
            container.publish_diagnostics()
            time.sleep(0.25)
        output, _ = monitor.communicate(timeout=30)
    finally:
        monitor.kill()
    assert monitor.returncode == 0, output
    view = (tmp_path / 'monitor.svg').read_text()
    for text in ('traffic_light', 'traffic_sign', 'lane', 'gpu'):
        assert text in view, text
    assert 'waiting for' not in view.split('traffic_light')[-1]
    widget = tmp_path / 'monitor_widget.png'
    assert widget.stat().st_size > 10_000


def test_monitor_for_a_duration_exits_cleanly() -> None:
    """It aborted at exit ("terminate called without an active exception", 134) 4 of 4."""
    for _ in range(2):
        done = subprocess.run([sys.executable, '-m', 'edge_perception.cli', 'monitor',
                               '--duration', '1'], capture_output=True, text=True, timeout=60,
                              check=False)
        assert done.returncode == 0, done.stderr
        assert 'terminate called' not in done.stderr
