"""``edge-perception``: the project's command line (one subcommand per job)."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_perception.core.config import ConfigError, default_config_path
from edge_perception.monitor.timeline import TimelineError
from edge_perception.runtime.manifest import ModelLoadError
from edge_perception.tools.bag_errors import BagError

if TYPE_CHECKING:
    from edge_perception.runtime.tvm.store import ModelStore
    from edge_perception.runtime.tvm.target import CompileTarget, CpuTarget

SOURCE_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ZOO = SOURCE_ROOT / 'model_zoo'
VARIANTS = ('full', 'half', 'quarter')
MODELS = ('detector', 'sign_classifier')


def _train(args: argparse.Namespace) -> int:
    import torch  # the optional training extra; imported here so nodes never need it

    from edge_perception.models.train import TrainSettings, train_all

    torch.set_num_threads(args.threads)
    settings = TrainSettings(train_frames=args.train_frames, detector_epochs=args.epochs,
                             classifier_epochs=args.epochs + 2)
    train_all(args.zoo, models=args.models, variants=args.variants, settings=settings)
    print(f'wrote models and manifest under {args.zoo}; now run: edge-perception eval --record')
    return 0


def _add_train(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser('train', help='retrain model variants (needs requirements/train.txt)')
    parser.add_argument('--zoo', type=Path, default=DEFAULT_ZOO, help='model directory')
    parser.add_argument('--models', nargs='+', choices=MODELS, default=list(MODELS))
    parser.add_argument('--variants', nargs='+', choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument('--train-frames', type=_positive_int, default=2400)
    parser.add_argument('--epochs', type=_positive_int, default=10)
    parser.add_argument('--threads', type=_positive_int, default=2)
    parser.set_defaults(run=_train)


def _model_store(zoo: Path) -> ModelStore:
    from edge_perception.runtime.tvm.store import ModelStore

    return ModelStore.of(zoo)


def _eval(args: argparse.Namespace) -> int:
    from edge_perception.models.evaluate import evaluate, held_out_frames

    store = _model_store(args.zoo)
    scores = evaluate(store, held_out_frames(args.frames), args.models)
    print(f'{"model":<16} {"variant":<8} metrics (held-out test split, {args.frames} frames, TVM)')
    manifest = store.manifest
    for score in scores:
        shown = '  '.join(f'{k}={v:.4f}' for k, v in sorted(score.metrics.items()))
        print(f'{score.model:<16} {score.variant:<8} {shown}')
        manifest = manifest.with_metrics(score.model, score.variant, score.metrics)
    if args.record:
        manifest.save()
        print(f'recorded in {args.zoo / "manifest.json"}')
    return 0


def _add_eval(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser('eval', help='accuracy of every model variant, through TVM')
    parser.add_argument('--zoo', type=Path, default=DEFAULT_ZOO, help='model directory')
    parser.add_argument('--models', nargs='+', choices=MODELS, default=None)
    parser.add_argument('--frames', type=_positive_int, default=300,
                        help='test-split frames to use')
    parser.add_argument('--record', action='store_true', help='write results to the manifest')
    parser.set_defaults(run=_eval)


def _launch(args: argparse.Namespace) -> int:
    from edge_perception.core.launch_plan import plan_launch
    from edge_perception.ros.supervisor import run_launch

    plan = plan_launch(args.config)
    for container in plan.containers:
        print(f'launching {container.name} with {", ".join(n.name for n in container.nodes)}',
              flush=True)
    return run_launch(plan)


def _add_launch(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def _add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser('demo', help='replay a drive through the container, with a report')
    parser.add_argument('--config', type=Path, default=default_config_path())
    parser.add_argument('--bag', type=Path, default=None,
                        help='rosbag2 to replay (default: a synthetic drive, written once)')
    parser.add_argument('--frames', type=_positive_int, default=150,
                        help='frames of the synthetic drive')
    parser.add_argument('--rate', type=_positive_float, default=30.0,
                        help='camera rate of that drive')
    parser.add_argument('--resolution', type=_resolution, default=None, metavar='WxH',
                        help="that drive's frame size, e.g. 1280x720 (default 320x240)")
    parser.set_defaults(run=_demo)


def _build_models(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from edge_perception.core.config import load_config
    from edge_perception.runtime.tvm.store import ModelStore
    from edge_perception.runtime.tvm.target import CompileTarget, cuda_available, host_target

    config = load_config(args.config)
    store = _model_store(config.model_dir)
    if args.out is not None:
        store = ModelStore(store.manifest, cache_dir=args.out)
    cpu = args.target or host_target()
    cross = not cpu.runs_here()
    lanes = {lane.name: lane for lane in config.lanes}
    jobs = sorted({
        (model, variant, batch, lanes[task.lane].device, lanes[task.lane].threads)
        for task in config.tasks for model in task.models for variant in task.variants
        for batch in args.batch
    })
    for model, variant, batch, device, threads in tqdm(jobs, desc=f'building for {cpu.name}'):
        if device == 'cuda' and (cross or not cuda_available()):
            device = 'cpu'  # the lanes' fallback; a board builds its CUDA modules itself
        target = CompileTarget(device=device, num_cores=threads, cpu=cpu)
        store.build(model, variant, batch=store.compiled_batch(batch, device), target=target)
    print(f'{len(jobs)} modules for {cpu.triple} {cpu.mcpu} ready in {store.cache_dir}')
    if cross:
        print(f'copy them into the cache of the {cpu.arch} machine '
              '(~/.cache/edge_perception/tvm, or $EDGE_PERCEPTION_CACHE)')
    return 0


def _target(text: str) -> CpuTarget:
    """argparse type of --target: a CPU target, or a usage error that names the choices."""
    from edge_perception.runtime.tvm.target import TargetError, parse_target

    try:
        return parse_target(text)
    except TargetError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _int_at_least(low: int) -> Callable[[str], int]:
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


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def _float_above(low: float, *, inclusive: bool) -> Callable[[str], float]:
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


_positive_float = _float_above(0.0, inclusive=False)
_non_negative_float = _float_above(0.0, inclusive=True)


def _resolution(text: str) -> tuple[int, int]:
    """WIDTHxHEIGHT, e.g. 1280x720."""
    width, separator, height = text.lower().partition('x')
    if not separator or not width.isdigit() or not height.isdigit():
        raise argparse.ArgumentTypeError(f'{text!r} is not WIDTHxHEIGHT (e.g. 1280x720)')
    if not (16 <= int(width) <= 7680 and 16 <= int(height) <= 4320):
        raise argparse.ArgumentTypeError(f'{text}: width 16-7680 and height 16-4320 pixels')
    return int(width), int(height)


def _add_build_models(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser('build-models', help='compile every configured model with TVM')
    parser.add_argument('--config', type=Path, default=default_config_path())
    parser.add_argument('--batch', type=_positive_int, nargs='+', default=[1],
                        help='batch sizes')
    parser.add_argument('--target', type=_target, default=None, metavar='TARGET',
                        help='CPU to build for: host (default), a board (aarch64-jetson-orin, '
                             'aarch64-jetson-xavier, aarch64-jetson-nano, aarch64-raspberry-pi-5'
                             ', ...) or ARCH:CPU (e.g. aarch64:cortex-a72); another '
                             'architecture cross-compiles (gcc-aarch64-linux-gnu or ziglang)')
    parser.add_argument('--out', type=Path, default=None, metavar='DIR',
                        help='where the libraries go (default: the cache the nodes load from)')
    parser.set_defaults(run=_build_models)


def _bench(args: argparse.Namespace) -> int:
    from edge_perception.bench.report import run
    from edge_perception.core.config import load_config

    report = run(load_config(args.config), args.out, mode=args.mode,
                 sections=tuple(args.only), resolution=args.resolution)
    print(f'report: {report} (figures beside it)')
    return 0


def _add_bench(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    parser.add_argument('--resolution', type=_resolution, default=None, metavar='WxH',
                        help="the executor benchmark's camera frames, e.g. 1280x720 "
                             '(default 320x240)')
    parser.set_defaults(run=_bench)


def _monitor(args: argparse.Namespace) -> int:
    from edge_perception.tools.monitor_node import run_monitor

    return run_monitor(duration_s=args.duration, snapshot_dir=args.snapshot)


def _add_monitor(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        'monitor', help='live deadline view of a running container (/diagnostics, 2 Hz)')
    parser.add_argument('--duration', type=_positive_float, default=None,
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


def _add_report(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def _add_soak(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser('soak', help='hold the container at ~2x lane load; memory, '
                                         'queues and urgent-task misses over time')
    parser.add_argument('--config', type=Path, default=default_config_path())
    parser.add_argument('--duration', type=_positive_float, default=600.0,
                        help='seconds (CI: 30)')
    parser.add_argument('--load', type=_positive_float, default=2.0, help='lane load factor')
    parser.add_argument('--one-process', action='store_true',
                        help='every lane in one container process (default: one per lane)')
    parser.add_argument('--out', type=Path, default=Path('bench_output'),
                        help='folder for soak.png')
    parser.set_defaults(run=_soak)


# What MetaSchedule imports: to time records (dev requirements), and to search (tune extra).
MEASURE_EXTRA = ('psutil', 'cloudpickle')
TUNE_EXTRA = ('xgboost',)


def _tune(args: argparse.Namespace) -> int:
    import importlib.util

    from tqdm import tqdm

    from edge_perception.runtime.tvm.target import CompileTarget

    # A new CPU only times records and ranks them unless asked for trials too.
    args = argparse.Namespace(**{
        **vars(args), 'trials': (0 if args.new_cpu else 128) if args.trials is None
        else args.trials, 'rank': args.rank or (4 if args.new_cpu else None)})
    needed = (*MEASURE_EXTRA, *(TUNE_EXTRA if args.trials else ()))
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        print(f'edge-perception tune: missing {", ".join(missing)}; install the tuning extra: '
              '.venv/bin/pip install -r requirements/tune.txt -c requirements/constraints.txt',
              file=sys.stderr)
        return 2
    if args.trials < 0:
        print('edge-perception tune: --trials N needs N >= 0', file=sys.stderr)
        return 2
    if args.device == 'cpu' and args.batch != [1]:
        print('edge-perception tune: CPU builds are batch 1 (a batch runs sample by sample '
              'through them); --batch N > 1 is for --device cuda', file=sys.stderr)
        return 2
    if args.since is not None and (args.trials or not args.rank or args.since < 0):
        print('edge-perception tune: --since N (N >= 0) goes with --trials 0 --rank K: a run '
              'that tunes knows where its records start', file=sys.stderr)
        return 2
    if args.seed < 0:
        print('edge-perception tune: --seed K needs K >= 0 (0: a new CPU starts empty)',
              file=sys.stderr)
        return 2
    store = _model_store(args.zoo)
    target = CompileTarget(device=args.device, num_cores=args.threads)
    # A new CPU: every committed model, each function started from another CPU's best
    # records timed here, then the records that run fastest in the whole model kept.
    models = list(store.manifest.models) if args.new_cpu else args.models
    variants = list(VARIANTS) if args.new_cpu else args.variants
    jobs = [(model, variant, batch) for model in models for variant in variants
            if variant in store.manifest.models[model].variants for batch in args.batch]
    unit, per_job = ('trial', args.trials) if args.trials else ('model', 1)
    native_log = store.cache_dir / 'tune-logs' / f'{target.tag()}.log'
    with _native_stderr_to(native_log), tqdm(
            total=len(jobs) * per_job, desc=f'tuning for {target.tag()}', unit=unit) as progress:
        for model, variant, batch in jobs:
            progress.set_postfix_str(f'{model}/{variant} b{batch}')
            _tune_one(args, store, target, (model, variant, batch), progress)
            if not args.trials:
                progress.update(1)
    print(f"TVM's own log: {native_log}")
    return 0


@contextlib.contextmanager
def _native_stderr_to(path: Path) -> Iterator[None]:
    """What native code writes to stderr (TVM warns once per tuning database it opens, over
    the progress bars) goes to ``path``; Python's own stderr stays where it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    terminal = os.dup(2)
    python_stderr = sys.stderr
    try:
        writes_to_fd_2 = sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):  # already redirected (e.g. captured)
        writes_to_fd_2 = False
    with path.open('ab') as log:
        os.dup2(log.fileno(), 2)
    if writes_to_fd_2:
        sys.stderr = os.fdopen(os.dup(terminal), 'w', buffering=1, errors='replace')
    try:
        yield
    finally:
        if writes_to_fd_2:
            sys.stderr.close()
            sys.stderr = python_stderr
        os.dup2(terminal, 2)
        os.close(terminal)


def _tune_one(args: argparse.Namespace, store: ModelStore, target: CompileTarget,
              job: tuple[str, str, int], progress: Any) -> None:
    """Seed, tune and rank one model variant's database as ``args`` say."""
    from tqdm import tqdm

    from edge_perception.runtime.tvm.database import tuning_records
    from edge_perception.runtime.tvm.tuning.variants import (
        rank_variant,
        seed_variant,
        tune_variant,
    )

    model, variant, batch = job
    database = store.tuning_database(model, variant, batch=batch, target=target)
    held = tuning_records(database)
    # An empty database starts from another CPU's (of another architecture only for a new
    # CPU); one with records seeds only the functions it lacks from its own (a convolution
    # with its input's preparation), and records skipping the padding's taps where a
    # convolution has none.
    source = None if not args.seed else (
        database if held else
        store.borrowed_database(model, variant, batch=batch, target=target,
                                any_arch=args.new_cpu))
    if source is not None:
        with tqdm(desc=f'{model}/{variant} b{batch}: timing {source.parent.name} '
                       'records here', unit='record', leave=False) as measured:

            def timed(done: int, total: int) -> None:
                measured.total = total
                measured.update(done - measured.n)

            records = seed_variant(store, model, variant, batch=batch, target=target,
                                   source=source, per_function=args.seed, on_measured=timed)
        if records > held:
            tqdm.write(f'{model}/{variant} batch {batch}: {records - held} records '
                       f'from {source.parent.name}/{source.name}, timed here, in {database}')
    tuned_from = tuning_records(database) if args.trials else args.since
    if args.trials:
        try:
            records = tune_variant(store, model, variant, batch=batch, target=target,
                                   trials=args.trials, on_trials=progress.update,
                                   focus=args.focus, functions=args.functions)
        except ValueError as error:  # a function name the model does not have
            raise ModelLoadError(f'{model}/{variant}: {error}') from None
        tqdm.write(f'{model}/{variant} batch {batch}: {records} records in {database}')
    if args.rank:
        with tqdm(desc=f'{model}/{variant} b{batch}: ranking in the model',
                  unit='build', leave=False) as builds:
            report = rank_variant(store, model, variant, batch=batch, target=target,
                                  candidates=args.rank, on_build=builds.update,
                                  tuned_from=tuned_from)
        for line in report:
            tqdm.write(f'  {line}')


def _add_tune(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        'tune', help='MetaSchedule-tune models; databases go beside the models (commit them)')
    parser.add_argument('--zoo', type=Path, default=DEFAULT_ZOO, help='model directory')
    parser.add_argument('--models', nargs='+', choices=MODELS, default=list(MODELS))
    parser.add_argument('--variants', nargs='+', choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument('--batch', type=_positive_int, nargs='+', default=[1],
                        help='batch sizes (cuda; CPU builds are batch 1)')
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--threads', type=_positive_int, default=1,
                        help='lane threads (num-cores)')
    parser.add_argument('--trials', type=int, default=None,
                        help='trial budget per model variant and batch; reruns add to it '
                             '(default 128; 0 with --new-cpu)')
    which = parser.add_mutually_exclusive_group()
    which.add_argument('--focus', type=_positive_int, default=None, metavar='K',
                       help='tune only the K functions furthest from the best speed '
                            'reached in the model (a follow-up run)')
    which.add_argument('--functions', nargs='+', default=(), metavar='NAME',
                       help='tune only these TIR functions (names as the tuning log prints '
                            'them, e.g. fused_conv2d1_add1_relu11)')
    parser.add_argument('--rank', type=_positive_int, default=None, metavar='K',
                        help="then build the whole model with each heavy function's K best "
                             'records and keep the one whose calls run fastest inside it; on a '
                             'one-core CPU also choose serial or parallel loops (--trials 0: '
                             'only this)')
    parser.add_argument('--seed', type=int, default=16, metavar='K',
                        help='a CPU without a database starts from the fullest one of another '
                             "CPU of the same kind: each function's K best records there, "
                             'timed here; a database with records gives a convolution with its '
                             "input's preparation fused in K of the convolution's own; then "
                             'each convolution whose records all multiply its zero padding '
                             'gets K of its best again, skipping those taps, timed here (0: '
                             'none of these)')
    parser.add_argument('--new-cpu', action='store_true',
                        help="give this CPU its own databases: every committed model's, each "
                             "function started from another CPU's best records (--seed K), "
                             'timed here, then ranked in the model (--rank, default 4); with '
                             'no other CPU of this architecture, from any other; add --trials '
                             'N to tune further (default here: 0)')
    parser.add_argument('--since', type=int, default=None, metavar='N',
                        help="with --trials 0 --rank: the database's first N records are from "
                             "before the run being ranked; each function's best of those is "
                             'ranked too (a tuning run with --rank does this by itself)')
    parser.set_defaults(run=_tune)


def _synth_bag(args: argparse.Namespace) -> int:
    from edge_perception.tools.bags import write_synthetic_bag

    count = write_synthetic_bag(args.out, frames=args.frames, rate_hz=args.rate,
                                cameras=args.cameras, storage=args.storage,
                                corrupt_every=args.corrupt_every, resolution=args.resolution)
    print(f'wrote {count} messages to {args.out} ({args.storage})')
    return 0


def _add_synth_bag(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser('synth-bag', help='write a rosbag2 of a synthetic drive')
    parser.add_argument('out', type=Path, help='bag directory to create')
    parser.add_argument('--frames', type=_positive_int, default=300)
    parser.add_argument('--rate', type=_positive_float, default=30.0, help='camera rate in Hz')
    parser.add_argument('--cameras', type=int, choices=[1, 2], default=1)
    parser.add_argument('--storage', choices=['sqlite3', 'mcap'], default='sqlite3')
    parser.add_argument('--resolution', type=_resolution, default=None, metavar='WxH',
                        help='frame size, e.g. 1280x720 (default 320x240)')
    parser.add_argument('--corrupt-every', type=_non_negative_int, default=0,
                        help='make every k-th frame malformed (robustness testing; 0: none)')
    parser.set_defaults(run=_synth_bag)


def _replay(args: argparse.Namespace) -> int:
    import threading
    import time

    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.node import Node

    from edge_perception.tools.bags import BagPlayer

    rclpy.init()
    node = Node('edge_perception_player')
    player: BagPlayer | None = None
    try:
        player = BagPlayer(node, args.bag, rate=args.rate, loop=args.loop,
                           start_offset_s=args.start_offset, restamp=args.restamp)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        delay_until = time.monotonic() + args.delay
        while time.monotonic() < delay_until:  # subscribers discover the publishers first
            executor.spin_once(timeout_sec=0.05)
        threading.Thread(target=player.play, daemon=True).start()
        while not player.done.is_set():
            executor.spin_once(timeout_sec=0.1)
        print(f'published {player.published} messages from {args.bag}')
    except (KeyboardInterrupt, ExternalShutdownException):  # SIGINT / SIGTERM: stop here
        if player is not None:
            player.stop()
            player.done.wait(timeout=2.0)  # its thread leaves rclpy before the node goes
            print(f'stopped after {player.published} messages from {args.bag}')
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def _add_replay(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser('replay', help='play a rosbag2 into the graph (like ros2 bag play)')
    parser.add_argument('bag', type=Path)
    parser.add_argument('--rate', type=_positive_float, default=1.0)
    parser.add_argument('--loop', action='store_true')
    parser.add_argument('--start-offset', type=_non_negative_float, default=0.0,
                        help='seconds to skip')
    parser.add_argument('--delay', type=_non_negative_float, default=0.0,
                        help='seconds between creating the publishers and the first message '
                             '(as ros2 bag play --delay: lets subscribers match first)')
    parser.add_argument('--restamp', action='store_true',
                        help='stamp images with the send time, like a live camera (needed for '
                             'response times in `edge-perception report` of a recording)')
    parser.set_defaults(run=_replay)


SUBCOMMANDS: tuple[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None], ...] = (
    _add_train,
    _add_eval,
    _add_launch,
    _add_demo,
    _add_build_models,
    _add_bench,
    _add_monitor,
    _add_report,
    _add_soak,
    _add_tune,
    _add_synth_bag,
    _add_replay,
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
    except (ConfigError, ModelLoadError, BagError, TimelineError) as err:
        print(f'edge-perception {args.command}: {err}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == '__main__':
    sys.exit(main())
