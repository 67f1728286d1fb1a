"""A user's own ONNX model: add-model's checks, detect's output against onnxruntime and a
reference decoding, and the engine auto picks before and after tuning."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import onnxruntime
import pytest
import yaml

from edge_perception.cli import main

from ..conftest import committed_config
from ..user_models import colour_classifier, red_and_green_image, two_inputs, yolo_v8


@pytest.fixture
def zoo(repo_root: Path, tmp_path: Path) -> Path:
    zoo = tmp_path / 'zoo'
    shutil.copytree(repo_root / 'model_zoo', zoo)
    return zoo


def add(zoo: Path, path: Path, *options: str) -> int:
    return main(['add-model', str(path), '--zoo', str(zoo), '--no-compile', *options])


def cones_config(zoo: Path, tmp_path: Path, *, pipeline: str = 'yolo',
                 models: tuple[str, ...] = ('cones',)) -> Path:
    raw = committed_config()
    raw['model_dir'] = str(zoo)
    raw['tasks'].append({
        'name': 'cones', 'node': 'cone_detector', 'pipeline': pipeline, 'period_ms': 100.0,
        'deadline_ms': 100.0, 'lane': 'cpu', 'models': list(models), 'variants': ['full'],
        'variant': 'full', 'input_topic': '/camera/image_raw',
        'output_topic': '/perception/cones'})
    path = tmp_path / 'cones.yaml'
    path.write_text(yaml.safe_dump(raw))
    return path


def reference_detections(model: Path, image: np.ndarray, size: int = 64,
                         threshold: float = 0.25) -> list[tuple[str, float, list[float]]]:
    """Letterbox, onnxruntime and greedy per-class NMS written out here, independently."""
    height, width = image.shape[:2]
    scale = min(size / width, size / height)
    new_w, new_h = round(width * scale), round(height * scale)
    pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
    canvas = np.full((size, size, 3), 114, np.uint8)
    canvas[pad_y:pad_y + new_h, pad_x:pad_x + new_w] = cv2.resize(image, (new_w, new_h))
    tensor = canvas[..., ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255
    session = onnxruntime.InferenceSession(str(model), providers=['CPUExecutionProvider'])
    [output] = session.run(None, {'images': tensor})
    found: list[tuple[str, float, list[float]]] = []
    names = ('red', 'green')
    for row in sorted(output[0].T.tolist(), key=lambda r: -max(r[4:])):
        cls = int(np.argmax(row[4:]))
        if row[4 + cls] < threshold:
            continue
        x1, y1 = row[0] - row[2] / 2, row[1] - row[3] / 2
        box = [(x1 - pad_x) / scale, (y1 - pad_y) / scale, row[2] / scale, row[3] / scale]
        if all(label != names[cls] or iou(box, other) <= 0.45 for label, _, other in found):
            found.append((names[cls], row[4 + cls], box))
    return found


def iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / (a[2] * a[3] + b[2] * b[3] - ix * iy)


def detect_lines(config: Path, *images: Path, capsys: pytest.CaptureFixture[str]
                 ) -> list[dict[str, Any]]:
    main(['detect', '--config', str(config), '--task', 'cones', *map(str, images)])
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


@pytest.mark.parametrize(('make', 'options', 'message'), [
    (lambda p: p.write_text('not a model') or p, [], 'is not a valid ONNX model'),
    (lambda p: p, [], 'no such file'),
    (two_inputs, [], 'the model has 2 inputs (a, b); a task model takes one image'),
    (lambda p: yolo_v8(p, dynamic=True), [],
     "has a dynamic size [1, 3, '?', '?']: give --input-size WxH"),
    (yolo_v8, ['--classes', 'red', 'green', 'amber'],
     'output shape [1, 6, 64] does not fit a YOLO output with 3 classes'),
    (lambda p: yolo_v8(p, names=None), [], 'no class names in the model'),
])
def test_bad_models_are_refused_by_name_and_nothing_changes(
        zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], make: Any,
        options: list[str], message: str) -> None:
    manifest = (zoo / 'manifest.json').read_bytes()
    path = tmp_path / 'user.onnx'
    make(path)
    assert add(zoo, path, '--name', 'cones', '--kind', 'yolo', *options) == 2
    error = capsys.readouterr().err
    assert str(path) in error
    assert message.replace("'?'", '?') in error.replace("'?'", '?')
    assert (zoo / 'manifest.json').read_bytes() == manifest
    assert not (zoo / 'cones').exists()


def test_an_output_that_does_not_fit_the_kind_is_refused(
        zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = yolo_v8(tmp_path / 'y.onnx')
    assert add(zoo, path, '--name', 'cones', '--kind', 'classifier') == 2
    assert 'output shape [1, 6, 64] does not fit a classifier of 2 classes' in (
        capsys.readouterr().err)


def test_detect_prints_what_onnxruntime_and_a_reference_decoding_find(
        zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = yolo_v8(tmp_path / 'y.onnx', dynamic=True)
    assert add(zoo, model, '--name', 'cones', '--kind', 'yolo', '--input-size', '64x64') == 0
    out = capsys.readouterr().out
    assert 'added cones/full: yolo, input 1x3x64x64, 2 classes (red, green)' in out
    assert 'pipeline: yolo' in out  # the config snippet
    manifest = json.loads((zoo / 'manifest.json').read_text())['models']['cones']
    assert (manifest['kind'], manifest['preprocess']['resize']) == ('yolo', 'letterbox')
    image = red_and_green_image()
    cv2.imwrite(str(tmp_path / 'frame.png'), image)
    (tmp_path / 'broken.png').write_text('not an image')
    [line] = detect_lines(cones_config(zoo, tmp_path), tmp_path / 'frame.png',
                          tmp_path / 'broken.png', capsys=capsys)
    assert (line['task'], line['engine']) == ('cones', 'onnxruntime')  # untuned here
    expected = reference_detections(model, image)
    assert len(expected) >= 2
    assert {e[0] for e in expected} == {'red', 'green'}
    got = sorted((d['label'], d['score'], d['box']) for d in line['detections'])
    assert len(got) == len(expected)
    for (label, score, box), (want_label, want_score, want_box) in zip(
            got, sorted(expected), strict=True):
        assert label == want_label
        assert score == pytest.approx(want_score, abs=1e-3)
        assert box == pytest.approx(want_box, abs=0.1)


def test_auto_runs_onnxruntime_until_tuned_then_tvm(
        zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert add(zoo, yolo_v8(tmp_path / 'y.onnx'), '--name', 'cones', '--kind', 'yolo') == 0
    cv2.imwrite(str(tmp_path / 'frame.png'), red_and_green_image())
    config = cones_config(zoo, tmp_path)
    capsys.readouterr()
    [before] = detect_lines(config, tmp_path / 'frame.png', capsys=capsys)
    assert before['engine'] == 'onnxruntime'
    assert main(['tune', '--zoo', str(zoo), '--models', 'cones', '--variants', 'full',
                 '--budget', '1s', '--trials', '4']) == 0
    tuned = capsys.readouterr().out
    assert 'cones/full: TVM' in tuned
    assert 'after 4 trials' in tuned
    [after] = detect_lines(config, tmp_path / 'frame.png', capsys=capsys)
    assert after['engine'] == 'tvm'
    # Equal scores (several cells of one colour) may come in another order: compare sorted.
    def found(line: dict[str, Any]) -> list[tuple[str, list[float], float]]:
        return sorted((d['label'], d['box'], d['score']) for d in line['detections'])

    assert len(found(after)) == len(found(before))
    for (label, box, score), (ort_label, ort_box, ort_score) in zip(
            found(after), found(before), strict=True):
        assert (label, box) == (ort_label, ort_box)
        assert score == pytest.approx(ort_score, abs=1e-3)
    # A tuned build that tune --budget timed slower than onnxruntime is not used.
    [measured] = zoo.glob('tuning/*/cones-full-b1-*/measured.json')
    measured.write_text('{"tvm_ms": 9.0, "onnxruntime_ms": 1.0}')
    [slower] = detect_lines(config, tmp_path / 'frame.png', capsys=capsys)
    assert slower['engine'] == 'onnxruntime'


def test_shape_arithmetic_of_unsimplified_exports_compiles_with_tvm(tmp_path: Path) -> None:
    """Reshape targets computed from Shape (Ultralytics with simplify=False) failed TVM's
    import; folded, the build matches onnxruntime."""
    from edge_perception.runtime.model_split import fold_constants, with_static_input
    from edge_perception.runtime.tvm.engine import TvmEngine
    from edge_perception.runtime.tvm.lowering import compile_onnx
    from edge_perception.runtime.tvm.target import CompileTarget

    path = yolo_v8(tmp_path / 'shapes.onnx', shape_ops=True)
    model = onnx.load(str(path))
    folded = fold_constants(with_static_input(model, (1, 3, 64, 64)))
    assert 'Shape' not in {node.op_type for node in folded.graph.node}
    library = tmp_path / 'shapes.so'
    compile_onnx(model, library, input_shape=(1, 3, 64, 64), target=CompileTarget('cpu'),
                 databases=[])
    engine = TvmEngine(library, device='cpu', input_shape=(1, 3, 64, 64))
    image = np.random.default_rng(1).random((1, 3, 64, 64), dtype=np.float32)
    session = onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    [expected] = session.run(None, {'images': image})
    np.testing.assert_allclose(engine.run(image), expected, rtol=1e-5, atol=1e-6)


def test_a_classifier_names_the_whole_frame_or_a_detectors_boxes(
        zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert add(zoo, colour_classifier(tmp_path / 'c.onnx'), '--name', 'colour',
               '--kind', 'classifier', '--classes', 'reddish', 'greenish') == 0
    assert add(zoo, yolo_v8(tmp_path / 'y.onnx'), '--name', 'cones', '--kind', 'yolo') == 0
    red = np.zeros((48, 64, 3), np.uint8)
    red[..., 2] = 200
    cv2.imwrite(str(tmp_path / 'red.png'), red)
    cv2.imwrite(str(tmp_path / 'frame.png'), red_and_green_image())
    capsys.readouterr()
    [whole] = detect_lines(cones_config(zoo, tmp_path, pipeline='classifier',
                                        models=('colour',)), tmp_path / 'red.png', capsys=capsys)
    [frame] = whole['detections']
    assert (frame['label'], frame['box']) == ('reddish', [0.0, 0.0, 64.0, 48.0])
    assert frame['score'] > 0.99  # softmax of logits (10 x 200/255 apart)
    [boxes] = detect_lines(cones_config(zoo, tmp_path, pipeline='classifier',
                                        models=('cones', 'colour')),
                           tmp_path / 'frame.png', capsys=capsys)
    [found] = detect_lines(cones_config(zoo, tmp_path), tmp_path / 'frame.png', capsys=capsys)
    # Each box the detector found, named by the classifier from its crop.
    assert [d['box'] for d in boxes['detections']] == [d['box'] for d in found['detections']]
    assert [d['label'] for d in boxes['detections']] == [
        {'red': 'reddish', 'green': 'greenish'}[d['label']] for d in found['detections']]


def test_our_detector_added_as_a_centernet_model_finds_what_our_light_task_finds(
        repo_root: Path, zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edge_perception.synthetic.scenes import generate_frame

    assert add(zoo, repo_root / 'model_zoo' / 'detector' / 'full.onnx', '--name', 'heatmaps',
               '--kind', 'centernet', '--classes', 'off', 'red', 'yellow', 'green',
               'sign') == 0
    frame = next(f for f in (generate_frame('test', i) for i in range(50))
                 if {'red', 'green'} & {o.label for o in f.objects})
    cv2.imwrite(str(tmp_path / 'scene.png'), frame.image)
    capsys.readouterr()
    [line] = detect_lines(cones_config(zoo, tmp_path, pipeline='centernet',
                                       models=('heatmaps',)), tmp_path / 'scene.png',
                          capsys=capsys)
    lights = {(d['label'], tuple(round(v) for v in d['box'])) for d in line['detections']
              if d['label'] != 'sign'}
    truth = {o.label for o in frame.objects if o.label in ('red', 'yellow', 'green')}
    assert truth <= {label for label, _ in lights}


def test_a_retrained_file_of_the_same_architecture_keeps_its_tuning(tmp_path: Path) -> None:
    from edge_perception.runtime.manifest import carry_tuning, file_sha256, same_architecture

    old, new = yolo_v8(tmp_path / 'old.onnx'), yolo_v8(tmp_path / 'new.onnx', names=None)
    other = yolo_v8(tmp_path / 'other.onnx', size=128)
    assert same_architecture(old, new)  # metadata aside, the same graph
    assert not same_architecture(old, other)  # another input size: other workloads
    old_sha, new_sha = file_sha256(old), file_sha256(new)
    assert old_sha != new_sha
    database = tmp_path / 'tuning' / 'llvm-x' / f'cones-full-b1-{old_sha[:12]}'
    database.mkdir(parents=True)
    (database / 'database_tuning_record.json').write_text('[0, []]\n')
    [moved] = carry_tuning(tmp_path, 'cones', 'full', old_sha, new_sha)
    assert moved.name == f'cones-full-b1-{new_sha[:12]}'
    assert (moved / 'database_tuning_record.json').is_file()
    assert not database.exists()
