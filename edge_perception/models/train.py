"""Training and ONNX export of the detector and the crop classifiers' variants (needs torch).

Seeded and CPU-only: ``edge-perception train`` retrains every variant on 2 cores in minutes,
writes ``model_zoo/<model>/<variant>.onnx`` and records file hashes in the manifest.
Accuracy is then measured through TVM by ``edge-perception eval --record``.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from edge_perception.models.light_state import real_examples, synthetic_examples
from edge_perception.models.networks import VARIANT_WIDTHS, CropClassifier, Detector
from edge_perception.models.real_lights import (
    Crop,
    dataset_split,
    load_crops,
    train_and_validation,
    training_frames,
)
from edge_perception.runtime.manifest import (
    Manifest,
    ModelEntry,
    VariantEntry,
    carry_tuning,
    file_sha256,
    same_architecture,
)
from edge_perception.synthetic.scenes import Frame, generate_frame
from edge_perception.tasks.classes import DETECTOR_CLASSES, LIGHT_STATES, SIGN_CLASSES
from edge_perception.tasks.crops import CROP_SIZE, sign_crop
from edge_perception.tasks.detector_decoding import INPUT_HEIGHT, INPUT_WIDTH, STRIDE

GRID_H, GRID_W = INPUT_HEIGHT // STRIDE, INPUT_WIDTH // STRIDE


@dataclass(frozen=True)
class TrainSettings:
    train_frames: int = 2400
    detector_epochs: int = 10
    classifier_epochs: int = 12
    batch_size: int = 16
    seed: int = 7
    # Frames with real photographed lights (models.real_lights) added to the detector's
    # training set, whose crops also train the light-state classifier; 0 = synthetic only.
    # real_data: their folder (None: the wheel's).
    real_frames: int = 0
    real_data: Path | None = None


@dataclass(frozen=True)
class TrainingData:
    """Synthetic scenes, frames with real lights pasted in, and those real crops."""

    synthetic: list[Frame]
    real_frames: list[Frame]
    real_crops: list[Crop]


def detector_targets(frame: Frame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Heatmaps (5, H, W), regression (4, H, W) = log size + offset, and a centre mask (H, W)."""
    heat = np.zeros((len(DETECTOR_CLASSES), GRID_H, GRID_W), np.float32)
    regression = np.zeros((4, GRID_H, GRID_W), np.float32)
    mask = np.zeros((GRID_H, GRID_W), np.float32)
    ys, xs = np.mgrid[0:GRID_H, 0:GRID_W].astype(np.float32)
    for obj in frame.objects:
        channel = DETECTOR_CLASSES.index('sign' if obj.kind == 'sign' else obj.label)
        cx, cy = (obj.x + obj.width / 2) / STRIDE, (obj.y + obj.height / 2) / STRIDE
        ix, iy = min(int(cx), GRID_W - 1), min(int(cy), GRID_H - 1)
        sigma_x = max(0.6, obj.width / STRIDE / 5)
        sigma_y = max(0.6, obj.height / STRIDE / 5)
        blob = np.exp(-((xs - ix) ** 2 / (2 * sigma_x**2) + (ys - iy) ** 2 / (2 * sigma_y**2)))
        np.maximum(heat[channel], blob, out=heat[channel])
        regression[:, iy, ix] = (
            math.log(obj.width / STRIDE), math.log(obj.height / STRIDE), cx - ix, cy - iy,
        )
        mask[iy, ix] = 1.0
    return heat, regression, mask


def _focal_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss on sigmoid heatmaps."""
    pred = pred.clamp(1e-4, 1 - 1e-4)
    positive = target.eq(1).float()
    pos_loss = -torch.log(pred) * (1 - pred) ** 2 * positive
    neg_loss = -torch.log(1 - pred) * pred**2 * (1 - target) ** 4 * (1 - positive)
    return (pos_loss.sum() + neg_loss.sum()) / positive.sum().clamp(min=1.0)


def _frames(split: str, count: int) -> list[Frame]:
    return [generate_frame(split, i) for i in tqdm(range(count), desc=f'drawing {split} frames')]


def _fit(
    model: nn.Module,
    batches: Callable[[np.random.Generator], Sequence[tuple[torch.Tensor, ...]]],
    loss_fn: Callable[[nn.Module, tuple[torch.Tensor, ...]], torch.Tensor],
    *,
    epochs: int,
    seed: int,
    desc: str,
) -> None:
    rng = np.random.default_rng(seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    steps = epochs * len(batches(np.random.default_rng(0)))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=3e-3, total_steps=steps)
    model.train()
    with tqdm(total=steps, desc=desc) as progress:
        for _ in range(epochs):
            for batch in batches(rng):
                loss = loss_fn(model, batch)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                schedule.step()
                progress.set_postfix(loss=f'{loss.item():.3f}')
                progress.update()
    model.eval()


def train_detector(data: TrainingData, width: float, settings: TrainSettings) -> Detector:
    torch.manual_seed(settings.seed)
    frames = data.synthetic + data.real_frames
    images = np.stack([f.image.transpose(2, 0, 1) for f in frames])
    targets = [detector_targets(f) for f in frames]
    heat = np.stack([t[0] for t in targets])
    regression = np.stack([t[1] for t in targets])
    mask = np.stack([t[2] for t in targets])

    def batches(rng: np.random.Generator) -> list[tuple[torch.Tensor, ...]]:
        order = rng.permutation(len(frames))
        chunks = [order[i : i + settings.batch_size] for i in range(0, len(order),
                                                                   settings.batch_size)]
        return [
            (torch.from_numpy(images[c]).float(), torch.from_numpy(heat[c]),
             torch.from_numpy(regression[c]), torch.from_numpy(mask[c]))
            for c in chunks
        ]

    def loss(model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, heat_t, reg_t, mask_t = batch
        out = model(x)
        n = len(DETECTOR_CLASSES)
        centres = mask_t.unsqueeze(1)
        reg_loss = (torch.abs(out[:, n:] - reg_t) * centres).sum() / centres.sum().clamp(min=1)
        return _focal_loss(out[:, :n], heat_t) + reg_loss

    model = Detector(width)
    _fit(model, batches, loss, epochs=settings.detector_epochs, seed=settings.seed,
         desc=f'detector x{width}')
    return model


def sign_examples(
    frames: list[Frame], rng: np.random.Generator, *, jitter: float
) -> tuple[np.ndarray, np.ndarray]:
    """Crops of every sign with its box shifted/scaled by up to ``jitter`` (detector noise)."""
    crops, labels = [], []
    for frame in frames:
        for obj in frame.objects:
            if obj.kind != 'sign':
                continue
            dx, dy, ds = rng.uniform(-jitter, jitter, 3)
            size = max(obj.width, obj.height)
            crops.append(sign_crop(frame.image, obj.x + dx * size, obj.y + dy * size,
                                   obj.width * (1 + ds), obj.height * (1 + ds)))
            labels.append(SIGN_CLASSES.index(obj.label))
    return np.stack(crops), np.array(labels, np.int64)


Examples = Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]]


def _train_crop_classifier(examples: Examples, classes: int, width: float,
                           settings: TrainSettings, *, desc: str) -> CropClassifier:
    """A CropClassifier on fresh ``examples`` (crops, labels) every epoch."""
    torch.manual_seed(settings.seed)

    def batches(rng: np.random.Generator) -> list[tuple[torch.Tensor, ...]]:
        crops, labels = examples(rng)
        order = rng.permutation(len(labels))
        size = settings.batch_size * 4
        return [
            (torch.from_numpy(crops[order[i : i + size]]),
             torch.from_numpy(labels[order[i : i + size]]))
            for i in range(0, len(order), size)
        ]

    def loss(model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, y = batch
        return nn.functional.nll_loss(torch.log(model(x).clamp(min=1e-7)), y)

    model = CropClassifier(width, classes)
    _fit(model, batches, loss, epochs=settings.classifier_epochs, seed=settings.seed, desc=desc)
    return model


def train_sign_classifier(data: TrainingData, width: float,
                          settings: TrainSettings) -> CropClassifier:
    return _train_crop_classifier(lambda rng: sign_examples(data.synthetic, rng, jitter=0.12),
                                  len(SIGN_CLASSES), width, settings,
                                  desc=f'sign_classifier x{width}')


def train_light_state(data: TrainingData, width: float,
                      settings: TrainSettings) -> CropClassifier:
    """The lights' state from crops of real lights (when given) and synthetic ones."""
    def examples(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        real, synthetic = real_examples(data.real_crops, rng), synthetic_examples(
            data.synthetic, rng)
        return np.concatenate([real[0], synthetic[0]]), np.concatenate([real[1], synthetic[1]])

    return _train_crop_classifier(examples, len(LIGHT_STATES), width, settings,
                                  desc=f'light_state x{width}')


def export_onnx(model: nn.Module, path: Path, input_shape: tuple[int, ...]) -> None:
    """Export with a dynamic batch axis; TVM compiles one static shape per batch size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        model, (torch.zeros(input_shape),), str(path), input_names=['input'],
        output_names=['output'], dynamic_axes={'input': {0: 'batch'}, 'output': {0: 'batch'}},
        opset_version=17, dynamo=False,
    )


def _previous_file(manifest: Manifest, model: str, variant: str,
                   path: Path) -> tuple[Path, str] | None:
    """A copy of the file a retraining replaces, with its manifest hash."""
    entry = manifest.models.get(model)
    if entry is None or variant not in entry.variants or not path.is_file():
        return None
    kept = path.with_suffix('.previous.onnx')
    shutil.copyfile(path, kept)
    return kept, entry.variants[variant].sha256


def _carry_tuning(zoo: Path, model: str, variant: str, previous: tuple[Path, str] | None,
                  path: Path) -> None:
    """A retrained file of the same architecture keeps its tuning databases (the records
    are schedules of its functions, not of its weights); another one needs tuning again."""
    if previous is None:
        return
    old_file, old_sha = previous
    try:
        if same_architecture(old_file, path):
            moved = carry_tuning(zoo, model, variant, old_sha, file_sha256(path))
            tqdm.write(f'{model}/{variant}: same architecture, {len(moved)} tuning '
                       'databases carried over')
        else:
            tqdm.write(f'{model}/{variant}: architecture changed: tune it again '
                       f'(edge-perception tune --models {model} --variants {variant})')
    finally:
        old_file.unlink()


Trainer = Callable[[TrainingData, float, TrainSettings], nn.Module]
MODEL_SPECS: dict[str, tuple[Trainer, tuple[int, ...], tuple[str, ...]]] = {
    'detector': (train_detector, (1, 3, INPUT_HEIGHT, INPUT_WIDTH), DETECTOR_CLASSES),
    'sign_classifier': (train_sign_classifier, (1, 3, CROP_SIZE, CROP_SIZE), SIGN_CLASSES),
    'light_state': (train_light_state, (1, 3, CROP_SIZE, CROP_SIZE), LIGHT_STATES),
}


def train_all(
    zoo: Path, *, models: Sequence[str], variants: Sequence[str], settings: TrainSettings
) -> Manifest:
    """Train, export and register every requested model variant; returns the new manifest."""
    manifest = Manifest.load_or_empty(zoo)
    data = TrainingData(_frames('train', settings.train_frames), [], [])
    if settings.real_frames:
        crops, _ = train_and_validation(load_crops(dataset_split('dataset_train',
                                                                 settings.real_data)))
        frames = (training_frames(crops, settings.real_frames, seed=settings.seed)
                  if 'detector' in models else [])
        data = TrainingData(data.synthetic, frames, crops)
    for model_name in models:
        trainer, input_shape, classes = MODEL_SPECS[model_name]
        for variant in variants:
            width = VARIANT_WIDTHS[variant]
            net = trainer(data, width, settings)
            path = zoo / model_name / f'{variant}.onnx'
            previous = _previous_file(manifest, model_name, variant, path)
            export_onnx(net, path, input_shape)
            _carry_tuning(zoo, model_name, variant, previous, path)
            manifest = manifest.with_variant(
                model_name,
                ModelEntry(input_shape=input_shape, classes=tuple(classes), variants={},
                           kind='centernet' if model_name == 'detector' else 'classifier'),
                variant,
                VariantEntry(
                    file=f'{model_name}/{variant}.onnx', sha256=file_sha256(path), width=width,
                    parameters=sum(p.numel() for p in net.parameters()), metrics={},
                ),
            )
            manifest.save(zoo)
    return manifest

