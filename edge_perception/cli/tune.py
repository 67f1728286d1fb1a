"""The tune subcommand: seed, search and rank tuning databases, one progress bar."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_perception.cli.arguments import DEFAULT_ZOO, MODELS, VARIANTS, duration, positive_int
from edge_perception.cli.models import model_store
from edge_perception.runtime.manifest import ModelLoadError

if TYPE_CHECKING:
    from edge_perception.runtime.tvm.store import ModelStore
    from edge_perception.runtime.tvm.target import CompileTarget

MEASURE_EXTRA = ('psutil', 'cloudpickle')
BUDGET_ROUND_TRIALS = 32
TUNE_EXTRA = ('xgboost',)


def _tune(args: argparse.Namespace) -> int:
    import importlib.util

    from tqdm import tqdm

    from edge_perception.runtime.tvm.target import CompileTarget

    # A new CPU only times records and ranks them unless asked for trials too.
    # A budget spends its time in rounds of --trials (default BUDGET_ROUND_TRIALS).
    default_trials = (0 if args.new_cpu else 128 if args.budget is None
                      else BUDGET_ROUND_TRIALS)
    args = argparse.Namespace(**{
        **vars(args), 'trials': default_trials if args.trials is None else args.trials,
        'rank': args.rank or (4 if args.new_cpu else None)})
    if args.budget is not None and (args.trials <= 0 or args.new_cpu):
        print('edge-perception tune: --budget spends rounds of --trials N > 0 trials, and '
              'not with --new-cpu', file=sys.stderr)
        return 2
    # A budget without xgboost searches with the random cost model (every trial still timed).
    needed = (*MEASURE_EXTRA, *(TUNE_EXTRA if args.trials and args.budget is None else ()))
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
    store = model_store(args.zoo)
    # Our models by default, where this model directory has them; named ones must exist.
    args.models = args.models or [m for m in MODELS if m in store.manifest.models]
    unknown = sorted(set(args.models) - set(store.manifest.models))
    if unknown:
        print(f'edge-perception tune: no model {", ".join(unknown)} in {args.zoo} (it has '
              f'{", ".join(sorted(store.manifest.models))}; add-model adds one)',
              file=sys.stderr)
        return 2
    target = CompileTarget(device=args.device, num_cores=args.threads)
    if args.budget is not None:
        return _tune_budget(args, store, target)
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


def _tune_budget(args: argparse.Namespace, store: ModelStore, target: CompileTarget) -> int:
    """``--budget``: rounds of trials where the time to gain is largest, a bar with ETA."""
    import importlib.util

    from tqdm import tqdm

    from edge_perception.runtime.tvm.tuning.budget import BudgetJob, tune_within

    jobs = [(model, variant) for model in args.models for variant in args.variants
            if variant in store.manifest.models[model].variants]
    if not jobs:
        print(f'edge-perception tune: {", ".join(args.models)} have no variant '
              f'{", ".join(args.variants)}', file=sys.stderr)
        return 2
    cost_model = 'xgb' if importlib.util.find_spec('xgboost') else 'random'
    if cost_model == 'random':
        print('tune: xgboost is not installed: the search uses the random cost model (every '
              'trial is still timed); requirements/tune.txt has the learned one', flush=True)
    native_log = store.cache_dir / 'tune-logs' / f'{target.tag()}.log'
    budget = int(args.budget)
    with _native_stderr_to(native_log), tqdm(total=budget, unit='s',
                                             desc=f'tuning for {target.tag()}') as progress:
        def moved(job: BudgetJob, spent: float) -> None:
            progress.update(min(int(spent), budget) - progress.n)
            tqdm.write(f'{spent / 60:5.1f} min: {job.model}/{job.variant} TVM '
                       f'{job.tvm_ns / 1e6:.3g} ms after {job.trials} trials, onnxruntime '
                       f'{job.onnxruntime_ns / 1e6:.3g} ms', file=sys.stdout)
            progress.set_postfix_str(f'{job.model}/{job.variant} {job.tvm_ns / 1e6:.3g} ms '
                                     f'(onnxruntime {job.onnxruntime_ns / 1e6:.3g})')

        timed = tune_within(store, jobs, target=target, budget_s=args.budget,
                            round_trials=args.trials,
                            cost_model=cost_model, on_round=moved)
    for job in timed:
        print(job.line())
    print(f'records: {store.manifest.root / "tuning" / target.tag()} (rerun to resume); '
          f"TVM's own log: {native_log}")
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


def add_tune(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        'tune', help='MetaSchedule-tune models; databases go beside the models (commit them)')
    parser.add_argument('--zoo', type=Path, default=DEFAULT_ZOO, help='model directory')
    parser.add_argument('--models', nargs='+', default=None,
                        help='models of the manifest (default: ours); a model you added too')
    parser.add_argument('--variants', nargs='+', default=list(VARIANTS),
                        help='variants to tune, where a model has them (default: ours)')
    parser.add_argument('--budget', type=duration, default=None, metavar='DURATION',
                        help='tune for this long (e.g. 30m, 1h): rounds of trials go to the '
                             'variant slowest against onnxruntime; rerun to resume')
    parser.add_argument('--batch', type=positive_int, nargs='+', default=[1],
                        help='batch sizes (cuda; CPU builds are batch 1)')
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--threads', type=positive_int, default=1,
                        help='lane threads (num-cores)')
    parser.add_argument('--trials', type=int, default=None,
                        help='trial budget per model variant and batch; reruns add to it '
                             '(default 128; 0 with --new-cpu)')
    which = parser.add_mutually_exclusive_group()
    which.add_argument('--focus', type=positive_int, default=None, metavar='K',
                       help='tune only the K functions furthest from the best speed '
                            'reached in the model (a follow-up run)')
    which.add_argument('--functions', nargs='+', default=(), metavar='NAME',
                       help='tune only these TIR functions (names as the tuning log prints '
                            'them, e.g. fused_conv2d1_add1_relu11)')
    parser.add_argument('--rank', type=positive_int, default=None, metavar='K',
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


