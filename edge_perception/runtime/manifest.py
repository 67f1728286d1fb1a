"""The model manifest (model_zoo/manifest.json): which model files exist and what they are.

Models load only through the manifest: every file is named there with its SHA-256, input
shape, classes and measured accuracy. Errors name the manifest path and the offending entry.
"""

from __future__ import annotations

import hashlib
import json
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edge_perception.tasks.model_spec import MODEL_KINDS, ModelSpec, Preprocess

MANIFEST_NAME = 'manifest.json'
FORMAT_VERSION = 1


class ModelLoadError(RuntimeError):
    """A model, its manifest entry or its compiled library cannot be used."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open('rb') as stream:
        for block in iter(lambda: stream.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class VariantEntry:
    """One variant file of a model; ``metrics`` holds accuracy measured through TVM."""

    file: str
    sha256: str
    width: float
    parameters: int
    metrics: dict[str, float] = field(default_factory=dict)


# Manifests written before models declared their kind: ours, by name.
_LEGACY_KINDS = {'detector': 'centernet', 'sign_classifier': 'classifier'}


@dataclass(frozen=True)
class ModelEntry:
    input_shape: tuple[int, ...]
    classes: tuple[str, ...]
    variants: dict[str, VariantEntry]
    kind: str = 'centernet'
    preprocess: Preprocess = field(default_factory=Preprocess)

    def spec(self) -> ModelSpec:
        return ModelSpec(self.kind, self.input_shape, self.classes, self.preprocess)


def _preprocess(raw: Any) -> Preprocess:
    raw = dict(raw)
    for key in ('mean', 'std'):
        if key in raw:
            raw[key] = tuple(float(v) for v in raw[key])
    return Preprocess(**raw)


def _kind(name: str, entry: Any) -> str:
    kind = str(entry.get('kind', _LEGACY_KINDS.get(name, '')))
    if kind not in MODEL_KINDS:
        raise ValueError(f'model {name!r}: kind {kind!r} is not one of {list(MODEL_KINDS)}')
    return kind


@dataclass(frozen=True)
class Manifest:
    """All models of a model directory, keyed by model name then variant name."""

    root: Path
    models: dict[str, ModelEntry]

    @classmethod
    def load(cls, root: Path) -> Manifest:
        """:raises ModelLoadError: if the manifest is missing or malformed."""
        path = root / MANIFEST_NAME
        try:
            raw = json.loads(path.read_text(encoding='utf-8'))
            if raw.get('format') != FORMAT_VERSION:
                raise ValueError(f'format {raw.get("format")!r}, expected {FORMAT_VERSION}')
            models = {
                name: ModelEntry(
                    input_shape=tuple(int(d) for d in entry['input_shape']),
                    classes=tuple(str(c) for c in entry['classes']),
                    variants={
                        vname: VariantEntry(
                            file=str(v['file']), sha256=str(v['sha256']),
                            width=float(v['width']), parameters=int(v['parameters']),
                            metrics={k: float(x) for k, x in v.get('metrics', {}).items()},
                        )
                        for vname, v in entry['variants'].items()
                    },
                    kind=_kind(name, entry),
                    preprocess=_preprocess(entry.get('preprocess', {})),
                )
                for name, entry in raw['models'].items()
            }
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise ModelLoadError(f'Cannot read manifest {path}: {err!r}') from None
        return cls(root=root, models=models)

    @classmethod
    def load_or_empty(cls, root: Path) -> Manifest:
        if (root / MANIFEST_NAME).exists():
            return cls.load(root)
        return cls(root=root, models={})

    def spec(self, model: str) -> ModelSpec:
        if model not in self.models:
            raise ModelLoadError(f'{self.root / MANIFEST_NAME} has no model {model!r}')
        return self.models[model].spec()

    def variant(self, model: str, variant: str) -> VariantEntry:
        entry = self.models.get(model)
        if entry is None or variant not in entry.variants:
            raise ModelLoadError(
                f'{self.root / MANIFEST_NAME} has no model {model!r} variant {variant!r}'
            )
        return entry.variants[variant]

    def path(self, model: str, variant: str) -> Path:
        """The variant's file; refused when the manifest points outside its directory or the
        file's folder is world-writable (anyone could swap the model)."""
        root = self.root.resolve()
        path = (root / self.variant(model, variant).file).resolve()
        if not path.is_relative_to(root):
            raise ModelLoadError(f'{self.root / MANIFEST_NAME}: {model}/{variant} file {path} '
                                 f'is outside the model directory {root}')
        for folder in {root, path.parent}:
            if folder.exists() and folder.stat().st_mode & stat.S_IWOTH:
                raise ModelLoadError(f'Model directory {folder} is world-writable; refusing to '
                                     f'load {model}/{variant} from it (chmod o-w {folder})')
        return path

    def with_variant(
        self, model: str, template: ModelEntry, variant: str, entry: VariantEntry
    ) -> Manifest:
        """A copy with ``variant`` of ``model`` set (the model taken from ``template`` if new)."""
        current = self.models.get(model, template)
        models = dict(self.models)
        models[model] = replace(current, variants={**current.variants, variant: entry})
        return replace(self, models=models)

    def with_metrics(self, model: str, variant: str, metrics: dict[str, float]) -> Manifest:
        entry = self.variant(model, variant)
        return self.with_variant(model, self.models[model], variant,
                                 replace(entry, metrics=dict(metrics)))

    def save(self, root: Path | None = None) -> None:
        target = (root or self.root) / MANIFEST_NAME
        raw: dict[str, Any] = {
            'format': FORMAT_VERSION,
            'models': {
                name: {
                    'kind': entry.kind,
                    'input_shape': list(entry.input_shape),
                    'classes': list(entry.classes),
                    'preprocess': _preprocess_json(entry.preprocess),
                    'variants': {
                        vname: {
                            'file': v.file, 'sha256': v.sha256, 'width': v.width,
                            'parameters': v.parameters,
                            'metrics': {k: round(x, 4) for k, x in sorted(v.metrics.items())},
                        }
                        for vname, v in sorted(entry.variants.items())
                    },
                }
                for name, entry in sorted(self.models.items())
            },
        }
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(raw, indent=2) + '\n', encoding='utf-8')


def _preprocess_json(preprocess: Preprocess) -> dict[str, Any]:
    return {'resize': preprocess.resize, 'channels': preprocess.channels,
            'scale': preprocess.scale, 'mean': list(preprocess.mean),
            'std': list(preprocess.std), 'pad_value': preprocess.pad_value}


def same_architecture(a: Path, b: Path) -> bool:
    """Whether two ONNX files differ in their weights' values only (same nodes, attributes,
    weight shapes and input): their TVM workloads, and so their tuning records, are the
    same."""
    import onnx

    def layout(path: Path) -> tuple[object, ...]:
        graph = onnx.load(str(path)).graph
        return (tuple((n.op_type, tuple(sorted(str(x) for x in n.attribute)))
                      for n in graph.node),
                tuple(tuple(init.dims) for init in graph.initializer),
                tuple(str(i.type) for i in graph.input))

    return layout(a) == layout(b)


def carry_tuning(zoo: Path, model: str, variant: str, old_sha256: str,
                 new_sha256: str) -> list[Path]:
    """Rename every target's databases of ``model``/``variant`` from the old file's hash to
    the new one's (see ModelStore.tuning_database), for a retrained file of the same
    architecture; returns the new paths."""
    moved = []
    for database in sorted((zoo / 'tuning').glob(f'*/{model}-{variant}-b*-{old_sha256[:12]}')):
        target = database.with_name(database.name[:-12] + new_sha256[:12])
        if not target.exists():
            database.rename(target)
            moved.append(target)
    return moved
