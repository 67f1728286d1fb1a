"""Every numeric argument of the CLI is checked by argparse: a usage error, never a traceback."""

from __future__ import annotations

import pytest

from edge_perception import cli


@pytest.mark.parametrize(('argv', 'message'), [
    (['synth-bag', 'out', '--rate', '0'], 'argument --rate: 0 is not a finite number > 0'),
    (['synth-bag', 'out', '--rate', 'nan'], 'argument --rate: nan is not a finite number > 0'),
    (['synth-bag', 'out', '--frames', '-1'], 'argument --frames: -1 is below 1'),
    (['synth-bag', 'out', '--corrupt-every', '-1'], 'argument --corrupt-every: -1 is below 0'),
    (['synth-bag', 'out', '--resolution', '1280'], "'1280' is not WIDTHxHEIGHT"),
    (['synth-bag', 'out', '--resolution', '99999x720'], 'width 16-7680 and height 16-4320'),
    (['demo', '--rate', '0'], 'argument --rate: 0 is not a finite number > 0'),
    (['demo', '--frames', 'many'], "argument --frames: 'many' is not a whole number"),
    (['eval', '--frames', '0'], 'argument --frames: 0 is below 1'),
    (['soak', '--load', '0'], 'argument --load: 0 is not a finite number > 0'),
    (['soak', '--duration', '-5'], 'argument --duration: -5 is not a finite number > 0'),
    (['build-models', '--batch', '0'], 'argument --batch: 0 is below 1'),
    (['replay', 'bag', '--rate', '0'], 'argument --rate: 0 is not a finite number > 0'),
    (['replay', 'bag', '--start-offset', '-1'], 'argument --start-offset: -1 is not a finite '
                                                'number >= 0'),
    (['monitor', '--duration', '0'], 'argument --duration: 0 is not a finite number > 0'),
    (['tune', '--threads', '0'], 'argument --threads: 0 is below 1'),
])
def test_a_bad_number_is_a_usage_error_naming_the_argument(
        argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_a_resolution_is_width_by_height() -> None:
    assert cli.build_parser().parse_args(
        ['synth-bag', 'out', '--resolution', '1280x720']).resolution == (1280, 720)
