"""`edge-perception tune` refuses what it cannot do with a message saying what to do."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from edge_perception import cli
from edge_perception.cli import tune as tune_command
from edge_perception.runtime.manifest import Manifest
from edge_perception.runtime.tvm.database import tuning_records
from edge_perception.runtime.tvm.target import CompileTarget


def test_tune_names_the_missing_extra_instead_of_crashing_in_a_worker(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(tune_command, 'TUNE_EXTRA', ('psutil', 'edge_perception_not_installed'))
    assert cli.main(['tune', '--models', 'sign_classifier', '--trials', '1']) == 2
    error = capsys.readouterr().err
    assert 'tune: missing ' in error
    assert 'edge_perception_not_installed;' in error
    assert 'pip install -r requirements/tune.txt' in error


def test_tune_names_the_functions_it_has_when_asked_for_one_it_lacks(
        repo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(tune_command, 'TUNE_EXTRA', ())  # the names are checked before any trial
    zoo = tmp_path / 'zoo'
    shutil.copytree(repo_root / 'model_zoo', zoo, ignore=shutil.ignore_patterns('tuning'))
    assert cli.main(['tune', '--zoo', str(zoo), '--models', 'sign_classifier',
                     '--variants', 'quarter', '--trials', '4',
                     '--functions', 'fused_no_such_conv']) == 2
    error = capsys.readouterr().err
    assert 'sign_classifier/quarter: no function fused_no_such_conv to tune' in error
    assert 'fused_conv2d1_add1_relu1' in error  # one the model has
    assert not list(zoo.rglob('database_tuning_record.json'))  # nothing tuned


@pytest.mark.parametrize('options', [['--trials', '4', '--rank', '2', '--since', '10'],
                                     ['--trials', '0', '--since', '10'],
                                     ['--trials', '0', '--rank', '2', '--since', '-1']])
def test_tune_refuses_since_outside_a_ranking_only_run(
        options: list[str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(tune_command, 'TUNE_EXTRA', ())
    assert cli.main(['tune', '--models', 'sign_classifier', *options]) == 2
    assert '--since N (N >= 0) goes with --trials 0 --rank K' in capsys.readouterr().err


def test_tune_refuses_a_negative_seed(monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(tune_command, 'TUNE_EXTRA', ())
    assert cli.main(['tune', '--models', 'sign_classifier', '--trials', '0', '--seed', '-1']) == 2
    assert '--seed K needs K >= 0' in capsys.readouterr().err


def test_tune_refuses_a_cpu_batch_it_would_never_build(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(tune_command, 'TUNE_EXTRA', ())
    assert cli.main(['tune', '--models', 'sign_classifier', '--batch', '1', '4']) == 2
    assert 'CPU builds are batch 1' in capsys.readouterr().err


def test_tune_on_a_new_cpu_first_times_another_cpus_records_here(
        zoo_tuned_elsewhere: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(tune_command, 'TUNE_EXTRA', ())  # no trials: the cost model is not needed
    command = ['tune', '--zoo', str(zoo_tuned_elsewhere), '--models', 'sign_classifier',
               '--variants', 'quarter', '--trials', '0', '--seed', '1']
    assert cli.main(command) == 0
    said = capsys.readouterr().out
    assert 'sign_classifier/quarter batch 1: ' in said
    assert f' records from llvm-{CompileTarget("cpu").cpu.arch}-elsewhere' in said
    [own] = (zoo_tuned_elsewhere / 'tuning' / CompileTarget('cpu').tag()).glob(
        'sign_classifier-quarter-b1-*')
    records = tuning_records(own)
    assert records >= 4  # one for each function the other CPU tuned
    # This CPU has its own now: nothing more from elsewhere, only its own records again,
    # marked to skip the padding's taps; once those exist, nothing.
    assert cli.main(command) == 0
    added = (own / 'database_tuning_record.json').read_text().splitlines()[records:]
    assert all('skip_padding_taps' in line for line in added)
    capsys.readouterr()
    records = tuning_records(own)
    assert cli.main(command) == 0
    assert 'timed here' not in capsys.readouterr().out
    assert tuning_records(own) == records


def _zoo_of_one_variant(zoo: Path, model: str, variant: str) -> Path:
    """``zoo`` with only ``model``/``variant`` in its manifest (a quick --new-cpu run)."""
    manifest = Manifest.load(zoo)
    entry = manifest.models[model]
    kept = dataclasses.replace(entry, variants={variant: entry.variants[variant]})
    Manifest(zoo, {model: kept}).save()
    return zoo


def test_tune_new_cpu_gives_every_committed_model_this_cpus_own_ranked_records(
        zoo_tuned_elsewhere: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(tune_command, 'TUNE_EXTRA', ())
    zoo = _zoo_of_one_variant(zoo_tuned_elsewhere, 'sign_classifier', 'quarter')
    assert cli.main(['tune', '--zoo', str(zoo), '--new-cpu', '--seed', '1', '--rank', '1']) == 0
    said = capsys.readouterr()
    assert ' records from llvm-' in said.out
    assert 'loops: parallel ' in said.out  # ranked in the model, loops chosen
    assert '1/1 [' in said.err  # the progress bar (with its ETA), one step a model
    [own] = (zoo / 'tuning' / CompileTarget('cpu').tag()).glob('sign_classifier-quarter-b1-*')
    assert tuning_records(own) >= 4
    assert (own / 'build_options.json').is_file()


def test_tune_new_cpu_starts_from_another_architecture_where_none_of_its_own_exists(
        zoo_copy: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A first board of an architecture: its records come from another's, timed here."""
    monkeypatch.setattr(tune_command, 'TUNE_EXTRA', ())
    zoo = _zoo_of_one_variant(zoo_copy, 'sign_classifier', 'quarter')
    tuning = zoo / 'tuning'
    here = CompileTarget('cpu').cpu.arch
    other = 'aarch64' if here == 'x86_64' else 'x86_64'
    for index, committed in enumerate(sorted(tuning.glob('llvm-*'))):
        cores_and_lowering = committed.name.split('-c', 1)[1]
        committed.rename(tuning / f'llvm-{other}-board{index}-c{cores_and_lowering}')
    assert cli.main(['tune', '--zoo', str(zoo), '--models', 'sign_classifier',
                     '--variants', 'quarter', '--trials', '0', '--seed', '1']) == 0
    assert not list(tuning.glob(f'llvm-{here}-*'))  # builds never borrow across them
    assert cli.main(['tune', '--zoo', str(zoo), '--new-cpu', '--seed', '1', '--rank', '1']) == 0
    assert f' records from llvm-{other}-board' in capsys.readouterr().out
    [own] = (tuning / CompileTarget('cpu').tag()).glob('sign_classifier-quarter-b1-*')
    assert tuning_records(own) >= 4


def test_tune_refuses_negative_trials(monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(tune_command, 'TUNE_EXTRA', ())
    assert cli.main(['tune', '--models', 'sign_classifier', '--trials', '-1']) == 2
    assert '--trials N needs N >= 0' in capsys.readouterr().err
