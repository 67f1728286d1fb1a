"""CPU sets of the executor's threads and of the lanes (real OS calls; needs 2 CPUs), and the
GIL switch interval the lanes run under."""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
from pathlib import Path

import pytest

from edge_perception.core.config import load_config
from edge_perception.core.scheduler import DeadlineScheduler
from edge_perception.core.thread_setup import pin_process_threads, restore_threads

needs_two_cpus = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2,
                                    reason='needs 2 usable CPUs')


@needs_two_cpus
def test_pinning_moves_existing_threads_and_restores_them() -> None:
    everywhere = os.sched_getaffinity(0)
    target = min(everywhere)
    ready, done = threading.Event(), threading.Event()
    helper = threading.Thread(target=lambda: (ready.set(), done.wait(5)))
    helper.start()
    ready.wait(5)
    try:
        previous, lines = pin_process_threads([target])
        assert helper.native_id in previous  # threads started before are moved too
        assert os.sched_getaffinity(helper.native_id) == {target}
        assert os.sched_getaffinity(0) == {target}
        assert lines == [f'executor threads ({len(previous)}) pinned to CPUs [{target}]']
        restore_threads(previous)
        assert os.sched_getaffinity(helper.native_id) == everywhere
        assert os.sched_getaffinity(0) == everywhere
    finally:
        done.set()
        helper.join()


@needs_two_cpus
def test_lanes_get_their_cores_and_the_executor_keeps_off_them(repo_root: Path) -> None:
    first, second = sorted(os.sched_getaffinity(0))[:2]
    everywhere = os.sched_getaffinity(0)
    config = load_config(repo_root / 'config' / 'f1tenth.yaml')
    lanes = tuple(dataclasses.replace(lane, cpus=(first,) if lane.name == 'gpu' else ())
                  for lane in config.lanes)
    config = dataclasses.replace(config, lanes=lanes, executor_cpus=(second,))
    scheduler = DeadlineScheduler(config, devices={'cpu': 'cpu', 'gpu': 'cpu'})
    scheduler.start()
    try:
        workers = {worker.lane.name: worker for worker in scheduler._workers}
        for worker in workers.values():  # wait until each lane ran its setup
            while worker._thread.native_id is None or not any(
                    line.startswith(f'lane {worker.lane.name}:') for line in scheduler.setup_log):
                threading.Event().wait(0.01)
        assert os.sched_getaffinity(workers['gpu']._thread.native_id) == {first}
        # a lane without CPUs of its own may still run anywhere
        assert os.sched_getaffinity(workers['cpu']._thread.native_id) == everywhere
        assert os.sched_getaffinity(0) == {second}
    finally:
        assert scheduler.stop()
    assert os.sched_getaffinity(0) == everywhere


def test_lanes_run_under_the_configured_gil_switch_interval(repo_root: Path) -> None:
    config = dataclasses.replace(load_config(repo_root / 'config' / 'f1tenth.yaml'),
                                 gil_switch_interval_ms=0.3)
    before = sys.getswitchinterval()
    scheduler = DeadlineScheduler(config, devices={'cpu': 'cpu', 'gpu': 'cpu'})
    scheduler.start()
    try:
        assert sys.getswitchinterval() == pytest.approx(0.0003)
        assert 'GIL switch interval 0.3 ms' in scheduler.setup_log
    finally:
        assert scheduler.stop()
    assert sys.getswitchinterval() == pytest.approx(before)
