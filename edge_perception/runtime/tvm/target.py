"""Which CPU TVM generates code for: this machine's, one named by the user, or a board's.

A CPU target is an architecture (``x86_64``, ``aarch64``), the name its tuning databases go
by and the LLVM CPU code is generated for, and the features this machine lacks although
LLVM's model of that CPU has them (a hypervisor may hide AVX-512 from a guest whose CPU
model has it: code using it would die of an illegal instruction).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tvm

from edge_perception.runtime.manifest import ModelLoadError

# Names a user may give instead of ARCH:CPU; every NVIDIA Jetson is aarch64.
BOARDS: Mapping[str, tuple[str, str]] = {
    'aarch64-jetson-orin': ('aarch64', 'cortex-a78ae'),
    'aarch64-jetson-xavier': ('aarch64', 'carmel'),
    'aarch64-jetson-nano': ('aarch64', 'cortex-a57'),
    'aarch64-raspberry-pi-5': ('aarch64', 'cortex-a76'),
    'aarch64-raspberry-pi-4': ('aarch64', 'cortex-a72'),
}
ARCHITECTURES = ('x86_64', 'aarch64')
# /proc/cpuinfo flag -> LLVM feature, for the vector features code generation relies on.
_CPUINFO_FEATURES: Mapping[str, Mapping[str, str]] = {
    'x86_64': {
        'avx': 'avx', 'avx2': 'avx2', 'fma': 'fma', 'f16c': 'f16c', 'avx512f': 'avx512f',
        'avx512bw': 'avx512bw', 'avx512dq': 'avx512dq', 'avx512vl': 'avx512vl',
        'avx512cd': 'avx512cd', 'avx512_vnni': 'avx512vnni', 'avx512_bf16': 'avx512bf16',
        'avx512_fp16': 'avx512fp16', 'avx512ifma': 'avx512ifma', 'avx512vbmi': 'avx512vbmi',
        'avx_vnni': 'avxvnni', 'amx_tile': 'amx-tile', 'amx_int8': 'amx-int8',
        'amx_bf16': 'amx-bf16',
    },
    'aarch64': {
        'asimd': 'neon', 'asimddp': 'dotprod', 'asimdhp': 'fullfp16', 'sve': 'sve',
        'sve2': 'sve2', 'i8mm': 'i8mm', 'bf16': 'bf16',
    },
}
# Environment variables that make this machine pass for another (tests, cross builds).
HOST_CPU_VARIABLE = 'EDGE_PERCEPTION_HOST_CPU'
HOST_ARCH_VARIABLE = 'EDGE_PERCEPTION_HOST_ARCH'
CROSS_CC_VARIABLE = 'EDGE_PERCEPTION_CROSS_CC'
# ELF e_machine values of the architectures above.
_ELF_MACHINES = {62: 'x86_64', 183: 'aarch64', 40: 'arm', 3: 'x86'}


class TargetError(ModelLoadError):
    """A target that cannot be built for or run here: named, with what to do."""


@dataclass(frozen=True)
class CpuTarget:
    """An LLVM CPU target.

    :param arch: 'x86_64' or 'aarch64'.
    :param name: what its tuning databases are named after (an LLVM CPU name, or any name
        a user gives this machine).
    :param mcpu: the LLVM CPU code is generated for.
    :param mattr: LLVM features turned off ('-avx512f'): those this machine lacks.
    """

    arch: str
    name: str
    mcpu: str
    mattr: tuple[str, ...] = ()

    @property
    def triple(self) -> str:
        return f'{self.arch}-linux-gnu'

    def llvm(self, num_cores: int) -> dict[str, Any]:
        """TVM's target dictionary for ``num_cores`` threads."""
        spec: dict[str, Any] = {'kind': 'llvm', 'mtriple': self.triple, 'mcpu': self.mcpu,
                                'num-cores': num_cores}
        if self.mattr:
            spec['mattr'] = list(self.mattr)
        return spec

    def runs_here(self) -> bool:
        """Whether libraries for it load on this machine (same architecture)."""
        return self.arch == machine_arch()

    def features(self) -> frozenset[str]:
        """LLVM's features of this CPU, less those turned off."""
        target = tvm.target.Target(self.llvm(1))
        return frozenset(tvm.target.codegen.llvm_get_cpu_features(target))


def machine_arch() -> str:
    """This machine's architecture as our targets spell it ('arm64' is 'aarch64')."""
    arch = platform.machine().lower()
    return {'amd64': 'x86_64', 'arm64': 'aarch64'}.get(arch, arch)


def normalised_triple(triple: str) -> str:
    """``<arch>-linux-gnu`` from any Linux triple LLVM reports (e.g. the conda-built LLVM
    of the TVM wheel says 'x86_64-conda-linux-gnu')."""
    arch = triple.split('-', 1)[0].lower()
    arch = {'amd64': 'x86_64', 'arm64': 'aarch64'}.get(arch, arch)
    if arch not in ARCHITECTURES:
        raise TargetError(f'architecture {arch!r} (from {triple!r}) is not supported: '
                          f'use one of {", ".join(ARCHITECTURES)}')
    return f'{arch}-linux-gnu'


def host_target() -> CpuTarget:
    """This machine as LLVM sees it, or as ``EDGE_PERCEPTION_HOST_CPU`` /
    ``EDGE_PERCEPTION_HOST_ARCH`` name it.

    A CPU name LLVM does not know names the databases only (to try a CPU that has none:
    ``EDGE_PERCEPTION_HOST_CPU=unknowncpu``); code is then generated for the detected CPU.
    """
    return _host_target(os.environ.get(HOST_CPU_VARIABLE, ''),
                        os.environ.get(HOST_ARCH_VARIABLE, ''))


@functools.lru_cache(maxsize=8)
def _host_target(cpu_override: str, arch_override: str) -> CpuTarget:
    triple = normalised_triple(arch_override or str(tvm.target.codegen.llvm_get_system_triple()))
    arch = triple.split('-', 1)[0]
    detected = str(tvm.target.codegen.llvm_get_system_cpu())
    if arch != machine_arch() or not tvm.target.codegen.llvm_is_valid_cpu(detected, triple):
        detected = 'generic'
    name = cpu_override or detected
    mcpu = name if tvm.target.codegen.llvm_is_valid_cpu(name, triple) else detected
    if arch != machine_arch():
        return CpuTarget(arch, name, mcpu)
    return CpuTarget(arch, name, mcpu, _missing_features(arch, mcpu, _cpuinfo_flags()))


def _cpuinfo_flags() -> frozenset[str] | None:
    """The CPU flags Linux reports (x86 'flags', ARM 'Features'); None where unreadable."""
    try:
        text = Path('/proc/cpuinfo').read_text(encoding='utf-8', errors='replace')
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(':')
        if key.strip() in ('flags', 'Features'):
            return frozenset(value.split())
    return None


def _missing_features(arch: str, mcpu: str, flags: frozenset[str] | None) -> tuple[str, ...]:
    """'-feature' for each vector feature LLVM's ``mcpu`` has and the flags lack."""
    if flags is None:
        return ()
    known = tvm.target.codegen.llvm_get_cpu_features(
        tvm.target.Target({'kind': 'llvm', 'mtriple': f'{arch}-linux-gnu', 'mcpu': mcpu}))
    return tuple(sorted(f'-{feature}' for flag, feature in _CPUINFO_FEATURES[arch].items()
                        if feature in known and flag not in flags))


def parse_target(text: str) -> CpuTarget:
    """A CPU target from a board name (``aarch64-jetson-orin``), ``ARCH:CPU``
    (``aarch64:cortex-a72``) or ``host``."""
    if text == 'host':
        return host_target()
    arch, separator, cpu = text.partition(':')
    if text in BOARDS:
        arch, cpu = BOARDS[text]
    elif not separator:
        raise TargetError(f'unknown target {text!r}: use host, ARCH:CPU (e.g. aarch64:cortex-a72)'
                          f' or one of {", ".join(BOARDS)}')
    triple = normalised_triple(arch)
    if not tvm.target.codegen.llvm_is_valid_cpu(cpu, triple):
        raise TargetError(f'unknown target {text!r}: LLVM knows no CPU {cpu!r} for {triple} '
                          f'(e.g. {", ".join(_example_cpus(triple))})')
    return CpuTarget(triple.split('-', 1)[0], cpu, cpu)


def _example_cpus(triple: str) -> list[str]:
    names = tvm.target.codegen.llvm_get_cpu_archlist(
        tvm.target.Target({'kind': 'llvm', 'mtriple': triple}))
    return sorted(str(name) for name in names)[:6]


def library_compiler(target: CpuTarget) -> Callable[..., None] | None:
    """The function that links a library for ``target``: None for this machine's own
    compiler, else a cross compiler (``EDGE_PERCEPTION_CROSS_CC``, else
    ``<arch>-linux-gnu-gcc``, else zig's clang from the ``ziglang`` wheel)."""
    if target.runs_here():
        return None
    command = _cross_command(target)

    def link(output: str, objects: list[str], options: list[str] | None = None) -> None:
        command_line = [*command, '-shared', '-fPIC', '-o', output, *objects, *(options or [])]
        done = subprocess.run(command_line, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise TargetError(f'{command[0]} could not link {output} for {target.triple}:\n'
                              f'{done.stdout}{done.stderr}')

    link.output_format = 'so'  # type: ignore[attr-defined]
    return link


def _cross_command(target: CpuTarget) -> list[str]:
    chosen = os.environ.get(CROSS_CC_VARIABLE)
    if chosen:
        if shutil.which(chosen.split()[0]) is None:
            raise TargetError(f'{CROSS_CC_VARIABLE}={chosen!r}: no such program')
        return chosen.split()
    gcc = f'{target.triple}-gcc'
    if shutil.which(gcc):
        return [gcc]
    zig = _zig()
    if zig is not None:
        return [str(zig), 'cc', '-target', target.triple]
    raise TargetError(
        f'no cross compiler for {target.triple}: install one (Debian/Ubuntu: apt-get install '
        f'gcc-{target.triple}; or pip install ziglang) or set {CROSS_CC_VARIABLE}')


def _zig() -> Path | None:
    """zig's binary from the ``ziglang`` wheel (clang and lld for every target), if present."""
    spec = importlib.util.find_spec('ziglang')
    if spec is None or spec.origin is None:
        return None
    binary = Path(spec.origin).parent / 'zig'
    return binary if binary.is_file() else None


def library_arch(path: Path) -> str:
    """The architecture a shared library was built for, from its ELF header."""
    try:
        with path.open('rb') as library:
            header = library.read(20)
    except OSError as err:
        raise TargetError(f'Cannot read {path}: {err.strerror}') from None
    if len(header) < 20 or header[:4] != b'\x7fELF':
        raise TargetError(f'{path} is not a shared library (no ELF header)')
    machine = int.from_bytes(header[18:20], 'little' if header[5] == 1 else 'big')
    return _ELF_MACHINES.get(machine, f'ELF machine {machine}')


def check_runs_here(path: Path) -> None:
    """Refuse a library built for another architecture we know, naming both and the fix
    (anything else that is no library for this machine is left to the loader to name)."""
    try:
        arch = library_arch(path)
    except TargetError:
        return
    if arch in ARCHITECTURES and arch != machine_arch():
        raise TargetError(f'{path} is built for {arch}, this machine is {machine_arch()}: '
                          'build it here (edge-perception build-models) or copy the '
                          f'{machine_arch()} library')


# The lowering's name (see lowering.py: channels-last convolutions, prepacked weights, a
# vectorised sigmoid): part of every cache key and tuning folder, since another lowering
# means other TIR workloads.
LOWERING = 'nhwc-prepack-fastsigmoid'


def cuda_available() -> bool:
    try:
        return bool(tvm.cuda(0).exist)
    except Exception:
        return False


def _cuda_device_attributes() -> dict[str, Any]:
    """The GPU's architecture and limits, read from device 0: MetaSchedule's thread binding
    and dlight's rules refuse a CUDA target that does not state them."""
    if not cuda_available():
        raise ModelLoadError('no CUDA device to compile for (TVM sees none on this machine)')
    gpu = tvm.cuda(0)
    return {'kind': 'cuda', 'arch': 'sm_' + gpu.compute_version.replace('.', ''),
            'max_threads_per_block': gpu.max_threads_per_block,
            'max_shared_memory_per_block': gpu.max_shared_memory_per_block,
            'thread_warp_size': gpu.warp_size}


@dataclass(frozen=True)
class CompileTarget:
    """Where a lane runs its models: 'cpu' (LLVM, ``num_cores`` threads) or 'cuda', on the
    CPU ``cpu`` (this machine's unless a cross build names another)."""

    device: str
    num_cores: int = 1
    cpu: CpuTarget = field(default_factory=host_target)

    def spec(self) -> dict[str, Any]:
        host = self.cpu.llvm(self.num_cores)
        if self.device == 'cuda':
            return {**_cuda_device_attributes(), 'host': host}
        if self.device == 'cpu':
            return host
        raise ModelLoadError(f'unknown device {self.device!r} (use cpu or cuda)')

    def serial_capable(self) -> bool:
        """A one-core CPU target, whose parallel loops may as well be serial."""
        return self.device == 'cpu' and self.num_cores == 1

    def cache_key(self) -> str:
        return json.dumps(self.spec(), sort_keys=True)

    def tag(self, *, cpu: str | None = None, cores: str | None = None) -> str:
        """Folder name for this target's tuning databases, e.g.
        'llvm-x86_64-znver5-c1-nhwc-...'; ``cpu`` replaces the CPU (or GPU architecture)
        name and ``cores`` the number of cores, e.g. '*' for a glob. Only CPUs of one
        architecture share records."""
        if self.device == 'cuda':
            arch = tvm.cuda(0).compute_version if cuda_available() else 'unknown'
            return f'cuda-sm{cpu or arch.replace(".", "")}'
        return (f'llvm-{self.cpu.arch}-{cpu or self.cpu.name}-c{cores or self.num_cores}'
                f'-{LOWERING}')


def tagged_cpu(tag: str) -> str:
    """The CPU (or GPU architecture) a tuning folder is named after (see
    :meth:`CompileTarget.tag`): 'llvm-aarch64-cortex-a78ae-c1-...' -> 'cortex-a78ae'."""
    if tag.startswith('cuda-sm'):
        return tag.removeprefix('cuda-')
    named = re.fullmatch(r'llvm-[^-]+-(.+?)-c\d+-.*', tag)
    return named[1] if named else tag
