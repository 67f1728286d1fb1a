"""Subcommands that run the perception stack: launch, demo, bench, monitor, report, soak."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge_perception.cli.arguments import positive_float, positive_int, resolution
from edge_perception.core.config import default_config_path


def _launch(args: argparse.Namespace) -> int:
    from edge_perception.core.launch_plan import plan_launch
    from edge_perception.ros.supervisor import run_launch

    plan = plan_launch(args.config)
    for container in plan.containers:
        print(f'launching {container.name} with {", ".join(n.name for n in container.nodes)}',
              flush=True)
    return run_launch(plan)


def add_launch(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        'launch', help='in-process equivalent of `ros2 launch edge_perception f1tenth.launch.py`')
    parser.add_argument('config', type=Path, nargs='?', default=default_config_path())
    parser.set_defaults(run=_launch)


def _demo(args: argparse.Namespace) -> int:
    from edge_perception.core.config import load_config
    from edge_perception.tools.demo import run_demo

    run_demo(load_config(args.config), bag=args.bag, frames=args.frames, rate_hz=args.rate,
             resolution=args.resolution, out=sys.stdout)
    return 0


def add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser('demo', help='replay a drive through the container, with a report')
    parser.add_argument('--config', type=Path, default=default_config_path())
    parser.add_argument('--bag', type=Path, default=None,
                        help='rosbag2 to replay (default: a synthetic drive, written once)')
    parser.add_argument('--frames', type=positive_int, default=150,
                        help='frames of the synthetic drive')
    parser.add_argument('--rate', type=positive_float, default=30.0,
                        help='camera rate of that drive')
    parser.add_argument('--resolution', type=resolution, default=None, metavar='WxH',
                        help="that drive's frame size, e.g. 1280x720 (default 320x240)")
    parser.set_defaults(run=_demo)


def _bench(args: argparse.Namespace) -> int:
    from edge_perception.bench.report import run
    from edge_perception.core.config import load_config

    report = run(load_config(args.config), args.out, mode=args.mode,
                 sections=tuple(args.only), resolution=args.resolution)
    print(f'report: {report} (figures beside it)')
    return 0


def add_bench(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from edge_perception.bench.report import SECTIONS

    parser = sub.add_parser(
        'bench', help='every benchmark in one run: Markdown report + PNG figures')
    parser.add_argument('--config', type=Path, default=default_config_path())
    parser.add_argument('--mode', choices=['quick', 'full'], default='quick',
                        help='quick: CI-sized (minutes); full: the real run')
    parser.add_argument('--only', nargs='+', choices=SECTIONS, default=list(SECTIONS),
                        help='run these benchmarks only')
    parser.add_argument('--out', type=Path, default=Path('bench_output'),
                        help='folder for report.md and the figures')
    parser.add_argument('--resolution', type=resolution, default=None, metavar='WxH',
                        help="the executor benchmark's camera frames, e.g. 1280x720 "
                             '(default 320x240)')
    parser.set_defaults(run=_bench)


def _monitor(args: argparse.Namespace) -> int:
    from edge_perception.tools.monitor_node import run_monitor

    return run_monitor(duration_s=args.duration, snapshot_dir=args.snapshot)


def add_monitor(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        'monitor', help='live deadline view of a running container (/diagnostics, 2 Hz)')
    parser.add_argument('--duration', type=positive_float, default=None,
                        help='stop after this many seconds (default: until Ctrl-C)')
    parser.add_argument('--snapshot', type=Path, default=None, metavar='DIR',
                        help='at the end, save the view (SVG) and the rqt widget (PNG) here')
    parser.set_defaults(run=_monitor)


def _report(args: argparse.Namespace) -> int:
    from edge_perception.core.config import load_config
    from edge_perception.monitor.timeline import plot_report, read_log, summary

    if args.source.is_dir():
        from edge_perception.tools.bag_timelines import bag_timelines

        timelines = bag_timelines(args.source, load_config(args.config))
    else:
        timelines = read_log(args.source)
    print(summary(timelines))
    for path in plot_report(timelines, args.out):
        print(f'plot: {path}')
    return 0


def add_report(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        'report', help='plots of a finished run: response-time CDFs and miss timelines')
    parser.add_argument('source', type=Path, metavar='BAG_OR_LOG',
                        help='a rosbag2 recorded during a replay, or a demo run log (.jsonl)')
    parser.add_argument('--config', type=Path, default=default_config_path(),
                        help='tasks of the run (for a bag: output topics and deadlines)')
    parser.add_argument('--out', type=Path, default=Path('report_output'),
                        help='folder for the PNG figures')
    parser.set_defaults(run=_report)


def _soak(args: argparse.Namespace) -> int:
    import tempfile

    from edge_perception.bench.soak import format_result, plot, run_soak
    from edge_perception.core.config import load_config

    def show(sample: object) -> None:
        print(f'  {sample}', flush=True)

    with tempfile.TemporaryDirectory() as scratch:
        result = run_soak(load_config(args.config), Path(scratch), seconds=args.duration,
                          load=args.load, process_per_lane=not args.one_process, progress=show)
    print(format_result(result))
    if result.samples:
        args.out.mkdir(parents=True, exist_ok=True)
        plot(result, args.out / 'soak.png')
        print(f'plot: {args.out / "soak.png"}')
    return 1 if result.failure is not None else 0


def add_soak(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser('soak', help='hold the container at ~2x lane load; memory, '
                                         'queues and urgent-task misses over time')
    parser.add_argument('--config', type=Path, default=default_config_path())
    parser.add_argument('--duration', type=positive_float, default=600.0,
                        help='seconds (CI: 30)')
    parser.add_argument('--load', type=positive_float, default=2.0, help='lane load factor')
    parser.add_argument('--one-process', action='store_true',
                        help='every lane in one container process (default: one per lane)')
    parser.add_argument('--out', type=Path, default=Path('bench_output'),
                        help='folder for soak.png')
    parser.set_defaults(run=_soak)


# What MetaSchedule imports: to time records (dev requirements), and to search (tune extra).
