"""Argument types and defaults the subcommands share: a usage error names what was wrong."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge_perception.runtime.tvm.target import CpuTarget

SOURCE_ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT_ZOO = SOURCE_ROOT / 'model_zoo'
VARIANTS = ('full', 'half', 'quarter')
MODELS = ('detector', 'sign_classifier', 'light_state')


def cpu_target(text: str) -> CpuTarget:
    """argparse type of --target: a CPU target, or a usage error that names the choices."""
    from edge_perception.runtime.tvm.target import TargetError, parse_target

    try:
        return parse_target(text)
    except TargetError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def int_at_least(low: int) -> Callable[[str], int]:
    """argparse type: a whole number >= ``low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'{text!r} is not a whole number') from None
        if value < low:
            raise argparse.ArgumentTypeError(f'{value} is below {low}')
        return value

    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def float_above(low: float, *, inclusive: bool) -> Callable[[str], float]:
    """argparse type: a finite number > ``low`` (>= with ``inclusive``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'{text!r} is not a number') from None
        if not math.isfinite(value) or value < low or (value == low and not inclusive):
            raise argparse.ArgumentTypeError(
                f'{text} is not a finite number {">=" if inclusive else ">"} {low:g}')
        return value

    return parse


positive_float = float_above(0.0, inclusive=False)
non_negative_float = float_above(0.0, inclusive=True)


def resolution(text: str) -> tuple[int, int]:
    """WIDTHxHEIGHT, e.g. 1280x720."""
    width, separator, height = text.lower().partition('x')
    if not separator or not width.isdigit() or not height.isdigit():
        raise argparse.ArgumentTypeError(f'{text!r} is not WIDTHxHEIGHT (e.g. 1280x720)')
    if not (16 <= int(width) <= 7680 and 16 <= int(height) <= 4320):
        raise argparse.ArgumentTypeError(f'{text}: width 16-7680 and height 16-4320 pixels')
    return int(width), int(height)




def duration(text: str) -> float:
    """Seconds of a duration such as 30m, 1h, 1h30m, 90s or 45 (seconds)."""
    import re

    match = re.fullmatch(r'(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?', text.strip().lower())
    if not text.strip() or match is None:
        raise argparse.ArgumentTypeError(f'{text!r} is not a duration (e.g. 30m, 1h30m, 90s)')
    hours, minutes, seconds = (int(group or 0) for group in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise argparse.ArgumentTypeError(f'{text!r}: a budget must be longer than 0 s')
    return float(total)
