"""``edge-perception``: the project's command line (one subcommand per job)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from edge_perception.cli.bags import add_replay, add_synth_bag
from edge_perception.cli.models import add_build_models, add_eval, add_train
from edge_perception.cli.run import (
    add_bench,
    add_demo,
    add_launch,
    add_monitor,
    add_report,
    add_soak,
)
from edge_perception.cli.tune import add_tune
from edge_perception.cli.user_models import add_add_model, add_detect
from edge_perception.core.config import ConfigError
from edge_perception.monitor.timeline import TimelineError
from edge_perception.ros.message_adapter import MessagesNotBuiltError
from edge_perception.runtime.manifest import ModelLoadError
from edge_perception.tools.bag_errors import BagError

SUBCOMMANDS: tuple[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None], ...] = (
    add_train,
    add_eval,
    add_launch,
    add_demo,
    add_build_models,
    add_bench,
    add_monitor,
    add_report,
    add_soak,
    add_tune,
    add_synth_bag,
    add_replay,
    add_add_model,
    add_detect,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='edge-perception', description=__doc__)
    sub = parser.add_subparsers(dest='command', required=True)
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (ConfigError, ModelLoadError, BagError, TimelineError, MessagesNotBuiltError) as err:
        print(f'edge-perception {args.command}: {err}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


