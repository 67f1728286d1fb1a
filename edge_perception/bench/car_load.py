"""What else runs on a car's computer while perception does: started beside every row of the
F1TENTH rate benchmark (bench.f1tenth_rates), the same for every executor.

* ``control``: a ROS 2 node whose 50 Hz timer does ~1 ms of arithmetic, as a control loop
  (pure pursuit, a PID, the VESC driver) would, at normal priority.
* ``hog``: a CPU-heavy lower-priority job (mapping, logging, a planner) at nice 10 that
  keeps one core busy whenever the scheduler lets it.

``python -m edge_perception.bench.car_load control|hog`` runs one until SIGINT.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

CONTROL_HZ = 50.0
HOG_NICE = 10


def _work(matrix: np.ndarray, rounds: int) -> float:
    value = matrix
    for _ in range(rounds):
        value = np.tanh(value @ matrix)
    return float(value[0, 0])


def run_control() -> None:
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    from edge_perception.ros.lean_node import LeanNode

    rclpy.init()
    node = LeanNode('control_loop')
    matrix = np.random.default_rng(0).random((64, 64)) / 64

    def control_step() -> None:
        _work(matrix, 20)

    node.create_timer(1.0 / CONTROL_HZ, control_step)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def run_hog() -> None:
    os.nice(HOG_NICE)
    matrix = np.random.default_rng(1).random((64, 64)) / 64  # small: BLAS stays on one thread
    try:
        while True:
            _work(matrix, 50)
            time.sleep(0)  # a yield point, as any real job has
    except KeyboardInterrupt:
        pass


if __name__ == '__main__':
    {'control': run_control, 'hog': run_hog}[sys.argv[1]]()
