"""Sample /diagnostics content, as the container publishes it (see ros/diagnostics.py)."""

from __future__ import annotations

from edge_perception.monitor.board import Board, Status


def task_status(task: str, *, level: int, p50: float, p99: float, ratio: float,
                lane: str = 'cpu', deadline: float = 100.0) -> Status:
    return Status(
        name=f'edge_perception: {task}', level=level,
        message='meeting deadlines' if level == 0 else f'missing deadlines ({ratio:.0%} recent)',
        hardware_id=lane,
        values={'period_ms': f'{deadline:g}', 'deadline_ms': f'{deadline:g}', 'lane': lane,
                'variant': 'full', 'jobs': '120', 'misses': str(round(120 * ratio)),
                'drops': '3', 'miss_ratio': f'{ratio:.3f}', 'recent_miss_ratio': f'{ratio:.3f}',
                'response_p50_ms': f'{p50:.3f}', 'response_p99_ms': f'{p99:.3f}',
                'schedulable': 'true', 'bad_frames': '0', 'late': '2', 'skipped_frames': '10',
                'refused_frames': '1', 'rta_response_ms': '42.500', 'rta_wcet_ms': '20.000',
                'rta_blocking_ms': '10.000', 'rta_interference_ms': '10.000',
                'rta_jitter_ms': '2.500'})


def lane_status(lane: str, *, fallback: bool, utilisation: float) -> Status:
    return Status(name=f'edge_perception: lane {lane}', level=1 if fallback else 0,
                  message='cpu', hardware_id=lane,
                  values={'utilisation': f'{utilisation:.3f}', 'device': 'cpu',
                          'fallback': str(fallback).lower(), 'queued_traffic_light': '1'})


def filled_board(seconds: int = 40) -> Board:
    """A board after ``seconds`` 1 Hz updates: lights fine, signs overloaded."""
    board = Board(history_s=30.0)
    for second in range(seconds):
        board.update([
            task_status('traffic_light', level=0, p50=20 + second % 5, p99=35 + second % 7,
                        ratio=0.0, lane='gpu'),
            task_status('traffic_sign', level=2, p50=150 + second, p99=230 + second, ratio=0.31,
                        deadline=200.0),
            lane_status('gpu', fallback=True, utilisation=0.45),
            lane_status('cpu', fallback=False, utilisation=0.99),
            Status(name='camera_driver: fps', level=0, message='ok', hardware_id='', values={}),
        ], stamp_s=float(second))
    return board
