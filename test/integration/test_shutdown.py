"""The container process exits cleanly on SIGINT and SIGTERM: no hung lane threads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_container_stops_on_signal(sig: signal.Signals) -> None:
    process = subprocess.Popen(
        [sys.executable, '-m', 'edge_perception.cli', 'launch'],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ))
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if 'hosting' in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert ready.wait(120), ''.join(lines)
        time.sleep(1.0)  # lanes started and idle-waiting
        started = time.monotonic()
        process.send_signal(sig)
        code = process.wait(timeout=30)
        stopped_in = time.monotonic() - started
    finally:
        process.kill()
    assert code == 0, ''.join(lines)
    assert stopped_in < 30
    assert 'Traceback' not in ''.join(lines)
