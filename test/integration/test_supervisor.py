"""The launch's supervisor: a container that dies is reported and restarted with back-off
(real child processes, a fake clock)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from edge_perception.core.launch_plan import ContainerSpec, NodeSpec
from edge_perception.ros.supervisor import LAUNCH_PREFIX, Supervisor

SPEC = ContainerSpec(name='perception_container_gpu', lane='gpu', config_file=Path('c.yaml'),
                     nodes=(NodeSpec('traffic_light_detector', 'traffic_light', '/camera',
                                     '/lights'),))


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_dead_container_is_reported_then_restarted_with_growing_back_off() -> None:
    clock, said = FakeClock(), []
    supervisor = Supervisor([SPEC], lambda spec: subprocess.Popen(['sleep', '60']),
                            clock=clock, log=said.append)
    supervisor.start_all()
    try:
        [child] = supervisor.children
        assert [s.level for s in supervisor.statuses()] == [b'\x00']  # running: no task status
        for restart, back_off in ((1, 1.0), (2, 2.0), (3, 4.0)):
            child.process.kill()
            child.process.wait()
            supervisor.poll()  # the next poll notices
            task, process = supervisor.statuses()
            assert (task.name, task.level) == ('edge_perception: traffic_light', b'\x02')
            assert task.message == (f'container perception_container_gpu was killed by '
                                    f'SIGKILL; restart in {back_off:.1f} s')
            assert (process.name, process.level) == (
                f'{LAUNCH_PREFIX}: perception_container_gpu', b'\x02')
            assert said[-1].startswith(f'[ERROR] perception_container_gpu was killed by SIGKILL; '
                                       f'restarting it in {back_off:g} s (restart {restart})')
            clock.now += back_off - 0.01
            supervisor.poll()
            assert child.restarts == restart - 1  # not yet
            clock.now += 0.01
            supervisor.poll()
            assert child.restarts == restart
            assert child.process.poll() is None  # a new process runs
            [running] = supervisor.statuses()
            assert {kv.key: kv.value for kv in running.values}['restarts'] == str(restart)
    finally:
        supervisor.stop(grace_s=1.0)
    assert child.process.poll() is not None


def test_a_container_that_exits_is_named_with_its_status() -> None:
    supervisor = Supervisor([SPEC], lambda spec: subprocess.Popen(['false']),
                            clock=FakeClock(), log=lambda _: None)
    supervisor.start_all()
    supervisor.children[0].process.wait()
    supervisor.poll()
    assert 'exited with status 1; restart in 1.0 s' in supervisor.statuses()[0].message
