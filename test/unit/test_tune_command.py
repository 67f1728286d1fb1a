"""`edge-perception tune` without the optional tuning extra says what to install."""

from __future__ import annotations

import pytest

from edge_perception import cli


def test_tune_names_the_missing_extra_instead_of_crashing_in_a_worker(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, 'TUNE_EXTRA', ('psutil', 'edge_perception_not_installed'))
    assert cli.main(['tune', '--models', 'sign_classifier', '--trials', '1']) == 2
    error = capsys.readouterr().err
    assert 'tune: missing ' in error
    assert 'edge_perception_not_installed;' in error
    assert 'pip install -r requirements/tune.txt' in error
