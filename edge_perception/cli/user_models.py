"""Subcommands for a user's own models: add-model, detect."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

from edge_perception.cli.arguments import DEFAULT_ZOO, resolution
from edge_perception.core.config import default_config_path


def _compile_with_progress(zoo: Path, name: str, variant: str) -> None:
    """The TVM build of the new model (what tuning starts from), with a running clock."""
    from tqdm import tqdm

    from edge_perception.runtime.tvm.store import ModelStore
    from edge_perception.runtime.tvm.target import CompileTarget

    store = ModelStore.of(zoo)
    failure: list[BaseException] = []

    def build() -> None:
        try:
            store.build(name, variant, batch=1, target=CompileTarget('cpu'))
        except Exception as err:  # TVM's own error types; the model still runs on onnxruntime
            failure.append(err)

    worker = threading.Thread(target=build, daemon=True)
    worker.start()
    with tqdm(desc=f'compiling {name}/{variant} with TVM', unit='s',
              bar_format='{desc}: {elapsed}') as progress:
        while worker.is_alive():
            worker.join(timeout=0.5)
            progress.update(0)
    if failure:
        print(f'add-model: TVM cannot compile {name}/{variant} ({failure[0]}); it runs on '
              'onnxruntime (engine: auto or onnxruntime)', file=sys.stderr)


def _add_model(args: argparse.Namespace) -> int:
    from edge_perception.models.add_model import AddModelError, add_model, config_snippet
    from edge_perception.tasks.model_spec import Preprocess

    preprocess = None
    if any(v is not None for v in (args.resize, args.channels, args.scale, args.mean,
                                   args.std)):
        from edge_perception.models.add_model import DEFAULT_PREPROCESS

        base = DEFAULT_PREPROCESS[args.kind]
        try:
            preprocess = Preprocess(
                resize=args.resize or base.resize, channels=args.channels or base.channels,
                scale=base.scale if args.scale is None else args.scale,
                mean=base.mean if args.mean is None else tuple(args.mean),
                std=base.std if args.std is None else tuple(args.std))
        except ValueError as err:
            print(f'edge-perception add-model: {err}', file=sys.stderr)
            return 2
    started = time.monotonic()
    try:
        entry = add_model(args.path, zoo=args.zoo, name=args.name, kind=args.kind,
                          variant=args.variant, classes=args.classes,
                          input_size=args.input_size, preprocess=preprocess,
                          replace_existing=args.replace)
    except AddModelError as err:
        print(f'edge-perception add-model: {err}', file=sys.stderr)
        return 2
    shape = 'x'.join(str(d) for d in entry.input_shape)
    print(f'added {args.name}/{args.variant}: {args.kind}, input {shape}, '
          f'{len(entry.classes)} classes ({", ".join(entry.classes[:8])}'
          f'{", ..." if len(entry.classes) > 8 else ""}), checked in '
          f'{time.monotonic() - started:.1f} s', flush=True)
    if args.compile:
        _compile_with_progress(args.zoo, args.name, args.variant)
    print('\nAdd this task under `tasks:` in your config (period, deadline, lane and topics '
          'are yours to set):\n')
    print(config_snippet(args.name, entry))
    return 0


def add_add_model(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser('add-model', help='check an ONNX model and add it to the model '
                                              'directory, with the config to run it')
    parser.add_argument('path', type=Path, help='the ONNX file')
    parser.add_argument('--name', required=True, help='model name (lower-case, digits, _)')
    parser.add_argument('--kind', required=True, choices=['yolo', 'classifier', 'centernet'])
    parser.add_argument('--classes', nargs='+', default=None, metavar='NAME',
                        help="class names in output order (default: the model's metadata, "
                             'as Ultralytics exports record them)')
    parser.add_argument('--input-size', type=resolution, default=None, metavar='WxH',
                        help='input size of a model whose input size is dynamic')
    parser.add_argument('--variant', default='full', help='variant name (default full); '
                        'variants of a model are more ONNX files of the same input and classes')
    parser.add_argument('--zoo', type=Path, default=DEFAULT_ZOO, help='model directory')
    parser.add_argument('--resize', choices=['letterbox', 'stretch'], default=None,
                        help='default: letterbox for yolo, stretch otherwise')
    parser.add_argument('--channels', choices=['rgb', 'bgr'], default=None,
                        help='channel order the model takes (default: rgb; bgr for centernet)')
    parser.add_argument('--scale', type=float, default=None,
                        help='pixel scale before mean/std (default 1/255; 1 for centernet)')
    parser.add_argument('--mean', type=float, nargs=3, default=None, metavar=('R', 'G', 'B'))
    parser.add_argument('--std', type=float, nargs=3, default=None, metavar=('R', 'G', 'B'))
    parser.add_argument('--replace', action='store_true',
                        help='replace the variant if the model already has it')
    parser.add_argument('--no-compile', dest='compile', action='store_false',
                        help='skip the TVM build (onnxruntime runs the model until tuned)')
    parser.set_defaults(run=_add_model)


def _detect(args: argparse.Namespace) -> int:
    from edge_perception.core.config import load_config
    from edge_perception.tools.detect import detect, pick_task

    config = load_config(args.config)
    try:
        task = pick_task(config, args.task)
    except ValueError as err:
        print(f'edge-perception detect: {err}', file=sys.stderr)
        return 2
    failed = detect(config, task, args.images, out=sys.stdout, errors=sys.stderr,
                    annotated=args.annotate)
    return 1 if failed else 0


def add_detect(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser('detect', help='run a configured task on image files (no ROS): '
                                           'one JSON line per image')
    parser.add_argument('images', type=Path, nargs='+', metavar='IMAGE_OR_DIR')
    parser.add_argument('--config', type=Path, default=default_config_path())
    parser.add_argument('--task', default=None, help="the task to run (default: the config's "
                                                     'only task)')
    parser.add_argument('--annotate', type=Path, default=None, metavar='DIR',
                        help='also write each image with its detections drawn to DIR')
    parser.set_defaults(run=_detect)
