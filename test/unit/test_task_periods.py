"""End-to-end misses per task period, as the benchmarks and the demo report count them: a
period is met by an output on time for a frame taken in it, whatever else was answered."""

from __future__ import annotations

from pathlib import Path

from edge_perception.core.config import load_config
from edge_perception.tools.demo import TaskResult

MS = 1_000_000


def light_task(repo_root: Path) -> TaskResult:
    # traffic_light: period 100 ms, deadline 100 ms.
    return TaskResult(load_config(repo_root / 'config' / 'f1tenth.yaml').task('traffic_light'))


def answered(result: TaskResult, outputs: dict[int, int]) -> TaskResult:
    """Outputs as (frame stamp ms -> response ms)."""
    for stamp_ms, response_ms in outputs.items():
        result.output_stamps.append(stamp_ms * MS)
        result.response_ns.append(response_ms * MS)
    return result


def camera(rate_hz: int, seconds: float) -> list[int]:
    return [round(i * 1000 / rate_hz) * MS for i in range(round(rate_hz * seconds))]


def test_a_fast_camera_is_judged_per_task_period_not_per_frame(repo_root: Path) -> None:
    # 1 s of a 100 Hz camera: the 10 Hz task's periods open at frames 0, 80, 180, ... 980
    # (11 grid periods from 0 to 1000 ms), not at 100 frames.
    result = answered(light_task(repo_root), {0: 20, 100: 30, 200: 150, 310: 40})
    periods = result.periods(camera(100, 1.0))
    assert periods.due == 11
    # Met: the periods of frames 0, 100 and 310; late: 200's; silent: the 7 from 380 on.
    assert (periods.missed, periods.silent) == (8, 7)


def test_extra_outputs_of_one_period_do_not_make_up_for_another(repo_root: Path) -> None:
    # A stock executor answering every frame it takes: four outputs in the first period,
    # none in the next two. Counting late + (due - received) called this perfect.
    result = answered(light_task(repo_root), {0: 10, 10: 10, 20: 10, 30: 10})
    periods = result.periods([0, 100 * MS, 200 * MS])
    assert (periods.due, periods.missed, periods.silent) == (3, 2, 2)
    assert result.misses([0, 100 * MS, 200 * MS]) == 2


def test_an_output_for_any_frame_of_the_period_meets_it(repo_root: Path) -> None:
    # A 100 Hz camera for 170 ms: periods open at frames 0 and 80.
    result = answered(light_task(repo_root), {50: 40, 140: 99})
    assert result.periods(camera(100, 0.17)).missed == 0
    late = answered(light_task(repo_root), {50: 40, 140: 101})
    periods = late.periods(camera(100, 0.17))
    assert (periods.due, periods.missed, periods.silent) == (2, 1, 0)


def test_a_drive_cut_short_owes_no_last_period_the_release_rule_forbids(
        repo_root: Path) -> None:
    # 5 s of a 480 Hz camera; periods open at frames 0, 75, 175, ... 4975 (51). A task that
    # answered a frame 36 ms past each grid point may release again only 75 ms after its
    # last, at 5011: after the drive's last frame (4998), so the 23 ms left owe nothing.
    frames = camera(480, 5.0)
    late_in_period = answered(light_task(repo_root), {k * 100 + 36: 20 for k in range(50)})
    periods = late_in_period.periods(frames)
    assert (periods.due, periods.missed) == (50, 0)
    # Answering 10 ms past each grid point, it could have released at 4985: that is a miss.
    early_in_period = answered(light_task(repo_root), {k * 100 + 10: 20 for k in range(50)})
    periods = early_in_period.periods(frames)
    assert (periods.due, periods.missed, periods.silent) == (51, 1, 1)
