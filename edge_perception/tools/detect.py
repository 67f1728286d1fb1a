"""``edge-perception detect``: a configured task on image files, without ROS.

How a user checks a model before taking it to the car: the task's pipeline and engines are
exactly the container's (pre-processing, decoding, engine choice), on the CPU.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

import cv2
import numpy as np

from edge_perception.core.config import PerceptionConfig, TaskConfig
from edge_perception.runtime.engines import ModelEngines
from edge_perception.runtime.task_models import TaskModels, cpu_placements
from edge_perception.runtime.tvm.store import ModelStore
from edge_perception.tasks.annotate import annotate
from edge_perception.tasks.frames import Frame
from edge_perception.tasks.pipelines import run_pipeline

IMAGE_SUFFIXES = frozenset({'.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.tif', '.tiff',
                            '.webp'})


def image_files(paths: Sequence[Path]) -> Iterator[Path]:
    """Each path given, and the images of each folder given (sorted, not recursive)."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            yield path


def pick_task(config: PerceptionConfig, name: str | None) -> TaskConfig:
    """The task named, or the config's only task."""
    if name is not None:
        return config.task(name)
    if len(config.tasks) == 1:
        return config.tasks[0]
    names = ', '.join(task.name for task in config.tasks)
    raise ValueError(f'{config.source} has {len(config.tasks)} tasks ({names}): name one '
                     'with --task')


def detect(config: PerceptionConfig, task: TaskConfig, paths: Sequence[Path], *,
           out: TextIO, errors: TextIO, annotated: Path | None = None) -> int:
    """One JSON line per image on ``out`` (detections with label, score and box [x, y,
    width, height] in pixels); an unreadable image gets a JSON line on ``errors`` and the
    rest go on. Returns the number of images that could not be read."""
    store = ModelStore.of(config.model_dir)
    engines = ModelEngines(store, config.model_engines(), log=logging.getLogger('detect'))
    models = TaskModels(task, engines, lanes=cpu_placements(config))
    engine = '+'.join(sorted({engines.kind(model, models.variant) for model in task.models}))
    if annotated is not None:
        annotated.mkdir(parents=True, exist_ok=True)
    failed = 0
    for path in image_files(paths):
        read = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if read is None:
            failed += 1
            print(json.dumps({'image': str(path), 'error': 'not a readable image file'}),
                  file=errors, flush=True)
            continue
        image = np.asarray(read, np.uint8)  # IMREAD_COLOR: 8-bit BGR
        detections = run_pipeline(models.pipeline, models, Frame(image))
        print(json.dumps({
            'image': str(path), 'task': task.name, 'variant': models.variant,
            'engine': engine, 'size': [image.shape[1], image.shape[0]],
            'detections': [{'label': d.label, 'class_id': d.class_id,
                            'score': round(d.score, 4),
                            'box': [round(v, 1) for v in (d.x, d.y, d.width, d.height)]}
                           for d in detections]}), file=out, flush=True)
        if annotated is not None:
            cv2.imwrite(str(annotated / f'{path.stem}.png'), annotate(image, detections))
    return failed
