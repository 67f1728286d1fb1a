"""Run TVM libraries on saved inputs under an emulated aarch64 Python (numpy and TVM only).

Argument: a JSON list of {library, inputs, outputs} (paths of .so, input .npy, output .npy).
Prints the machine it ran on once per library.
"""

import json
import platform
import sys

import numpy as np
import tvm
from tvm import relax

for run in json.loads(sys.argv[1]):
    machine = relax.VirtualMachine(tvm.runtime.load_module(run['library']), tvm.cpu())
    output = machine['main'](tvm.runtime.tensor(np.load(run['inputs'])))
    np.save(run['outputs'], output.numpy())
    print(platform.machine())
