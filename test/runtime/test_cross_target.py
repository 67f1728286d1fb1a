"""Compile targets: this machine's as LLVM sees it (or as the user names it), and aarch64
boards built for from here (cross-compiled, checked by ELF header, run under qemu)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import onnxruntime
import pytest

from edge_perception import cli
from edge_perception.runtime.manifest import Manifest
from edge_perception.runtime.tvm import target as tvm_target
from edge_perception.runtime.tvm.engine import TvmEngine
from edge_perception.runtime.tvm.store import ModelStore
from edge_perception.runtime.tvm.target import (
    BOARDS,
    HOST_CPU_VARIABLE,
    CompileTarget,
    CpuTarget,
    TargetError,
    host_target,
    library_arch,
    library_compiler,
    machine_arch,
    normalised_triple,
    parse_target,
    tagged_cpu,
)

ORIN = 'aarch64-jetson-orin'
EMULATOR = Path(os.environ.get('EDGE_PERCEPTION_ARM64', Path(__file__).parents[2] / '.arm64'))


@pytest.mark.parametrize(('reported', 'normalised'), [
    ('x86_64-conda-linux-gnu', 'x86_64-linux-gnu'),
    ('x86_64-pc-linux-gnu', 'x86_64-linux-gnu'),
    ('aarch64-unknown-linux-gnu', 'aarch64-linux-gnu'),
    ('arm64', 'aarch64-linux-gnu'),
])
def test_a_reported_triple_is_normalised(reported: str, normalised: str) -> None:
    assert normalised_triple(reported) == normalised


def test_an_architecture_we_do_not_build_for_is_named() -> None:
    with pytest.raises(TargetError, match=r"architecture 'riscv64' .* use one of x86_64, aarch64"):
        normalised_triple('riscv64-unknown-linux-gnu')


def test_the_host_target_is_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(HOST_CPU_VARIABLE, raising=False)
    host = host_target()
    assert host.triple == f'{machine_arch()}-linux-gnu'
    assert host.name == host.mcpu
    assert host.runs_here()
    assert CompileTarget('cpu').spec()['mtriple'] == host.triple


def test_a_cpu_name_llvm_does_not_know_names_only_the_databases(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(HOST_CPU_VARIABLE, raising=False)
    detected = host_target()
    monkeypatch.setenv(HOST_CPU_VARIABLE, 'unknowncpu')
    pretended = host_target()
    assert pretended.name == 'unknowncpu'
    assert pretended.mcpu == detected.mcpu  # code still for this machine
    assert CompileTarget('cpu', 2).tag().startswith(f'llvm-{machine_arch()}-unknowncpu-c2-')


def test_a_feature_the_cpu_model_has_and_this_machine_lacks_is_turned_off() -> None:
    """A guest whose hypervisor hides AVX-512 from a CPU model that has it."""
    flags = frozenset({'avx', 'avx2', 'fma', 'f16c', 'avx512f', 'avx512bw', 'avx512dq',
                       'avx512vl', 'avx512cd'})
    assert tvm_target._missing_features('x86_64', 'skylake-avx512', flags) == ()
    hidden = flags - {'avx512f', 'avx512bw'}
    assert tvm_target._missing_features('x86_64', 'skylake-avx512', hidden) == (
        '-avx512bw', '-avx512f')
    assert tvm_target._missing_features('x86_64', 'skylake-avx512', None) == ()
    assert tvm_target._missing_features('aarch64', 'cortex-a78ae',
                                        frozenset({'asimd', 'asimdhp'})) == ('-dotprod',)


@pytest.mark.parametrize('name', list(BOARDS))
def test_every_board_is_an_llvm_cpu(name: str) -> None:
    board = parse_target(name)
    assert board.arch == 'aarch64'
    assert board.llvm(1)['mcpu'] == BOARDS[name][1]
    assert 'neon' in board.features()


def test_a_target_can_be_given_as_arch_and_cpu() -> None:
    assert parse_target('aarch64:cortex-a72') == CpuTarget('aarch64', 'cortex-a72', 'cortex-a72')


@pytest.mark.parametrize(('text', 'match'), [
    ('jetson', r"unknown target 'jetson': use host, ARCH:CPU .* aarch64-jetson-orin"),
    ('aarch64:pentium4', r"LLVM knows no CPU 'pentium4' for aarch64-linux-gnu \(e\.g\. "),
    ('mips:r4000', r"architecture 'mips'"),
])
def test_an_unknown_target_is_named_with_the_choices(text: str, match: str) -> None:
    with pytest.raises(TargetError, match=match):
        parse_target(text)


def test_build_models_refuses_an_unknown_target_naming_the_choices(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(['build-models', '--target', 'orin'])
    assert exited.value.code == 2
    assert "unknown target 'orin'" in capsys.readouterr().err


def test_a_missing_cross_compiler_says_what_to_install(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    monkeypatch.setenv('PATH', str(tmp_path))
    monkeypatch.setattr(tvm_target, '_zig', lambda: None)
    with pytest.raises(TargetError, match='no cross compiler for aarch64-linux-gnu: install one '
                                          r'\(Debian/Ubuntu: apt-get install '
                                          'gcc-aarch64-linux-gnu; or pip install ziglang'):
        library_compiler(parse_target(ORIN))
    monkeypatch.setenv('EDGE_PERCEPTION_CROSS_CC', 'no-such-gcc')
    with pytest.raises(TargetError, match="EDGE_PERCEPTION_CROSS_CC='no-such-gcc': no such"):
        library_compiler(parse_target(ORIN))


def test_this_machine_links_with_its_own_compiler() -> None:
    assert library_compiler(host_target()) is None


@pytest.fixture(scope='module')
def aarch64_libraries(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every configured variant built for a Jetson Orin by one command."""
    out = tmp_path_factory.mktemp('aarch64')
    assert cli.main(['build-models', '--target', ORIN, '--out', str(out)]) == 0
    return out


def test_one_command_builds_an_aarch64_library_of_every_variant(
        aarch64_libraries: Path, repo_root: Path) -> None:
    manifest = Manifest.load(repo_root / 'model_zoo')
    libraries = sorted(aarch64_libraries.glob('*.so'))
    built = {library.name.split('-b1-')[0] for library in libraries}
    assert built == {f'{model}-{variant}' for model, entry in manifest.models.items()
                     for variant in entry.variants}
    assert {library_arch(library) for library in libraries} == {'aarch64'}


def test_a_library_for_another_architecture_is_refused_before_loading(
        aarch64_libraries: Path) -> None:
    [library] = aarch64_libraries.glob('sign_classifier-quarter-b1-*.so')
    with pytest.raises(TargetError, match=f'built for aarch64, this machine is {machine_arch()}'
                                          ': build it here'):
        TvmEngine(library, device='cpu', input_shape=(1, 3, 32, 32))


def test_cross_builds_are_cached_apart_from_this_machines(repo_root: Path,
                                                          tmp_path: Path) -> None:
    store = ModelStore(Manifest.load(repo_root / 'model_zoo'), cache_dir=tmp_path)
    here = store.library_path('sign_classifier', 'quarter', batch=1, target=CompileTarget('cpu'))
    orin = store.library_path('sign_classifier', 'quarter', batch=1,
                              target=CompileTarget('cpu', cpu=parse_target(ORIN)))
    assert here != orin
    assert 'aarch64-cortex-a78ae' in CompileTarget('cpu', cpu=parse_target(ORIN)).tag()


@pytest.mark.parametrize(('tag', 'cpu'), [
    ('llvm-x86_64-znver5-c1-nhwc-prepack-fastsigmoid', 'znver5'),
    ('llvm-aarch64-cortex-a78ae-c12-nhwc-prepack-fastsigmoid', 'cortex-a78ae'),
    ('cuda-sm87', 'sm87'),
])
def test_a_tuning_folder_names_its_cpu(tag: str, cpu: str) -> None:
    assert tagged_cpu(tag) == cpu
    if tag.startswith('llvm-'):
        arch = tag.split('-')[1]
        assert CompileTarget('cpu', 12, CpuTarget(arch, cpu, cpu)).tag().startswith(
            tag.rsplit('-c', 1)[0])


def test_a_file_that_is_no_library_is_named(tmp_path: Path) -> None:
    text = tmp_path / 'model.so'
    text.write_text('not ELF')
    with pytest.raises(TargetError, match=r'model\.so is not a shared library'):
        library_arch(text)


@pytest.mark.emulation
@pytest.mark.skipif(not (EMULATOR / 'sysroot' / 'usr' / 'bin' / 'python3.11').exists(),
                    reason='no emulated aarch64 Python: run scripts/arm64-emulator')
def test_aarch64_libraries_under_emulation_match_onnxruntime(
        aarch64_libraries: Path, repo_root: Path, tmp_path: Path) -> None:
    """Both models' quarter variants, loaded and run by the aarch64 TVM wheel under qemu
    (no timings: emulation says nothing about speed)."""
    manifest = Manifest.load(repo_root / 'model_zoo')
    runs = []
    for model in ('sign_classifier', 'detector'):
        [library] = aarch64_libraries.glob(f'{model}-quarter-b1-*.so')
        shape = manifest.models[model].input_shape
        inputs = np.random.default_rng(7).uniform(0, 255, shape).astype(np.float32)
        np.save(tmp_path / f'{model}-in.npy', inputs)
        runs.append({'library': str(library), 'inputs': str(tmp_path / f'{model}-in.npy'),
                     'outputs': str(tmp_path / f'{model}-out.npy')})
    environment = {**os.environ, 'QEMU_LD_PREFIX': str(EMULATOR / 'sysroot'),
                   'PYTHONPATH': str(EMULATOR / 'site')}
    done = subprocess.run(['qemu-aarch64', str(EMULATOR / 'sysroot/usr/bin/python3.11'),
                           str(Path(__file__).with_name('emulated_run.py')), json.dumps(runs)],
                          env=environment, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ['aarch64', 'aarch64']  # the emulated machine says so
    for model, run in zip(('sign_classifier', 'detector'), runs, strict=True):
        reference = onnxruntime.InferenceSession(str(manifest.path(model, 'quarter')),
                                                 providers=['CPUExecutionProvider'])
        expected = reference.run(None, {reference.get_inputs()[0].name: np.load(run['inputs'])})
        np.testing.assert_allclose(np.load(run['outputs']), expected[0], atol=2e-4, rtol=1e-3)
