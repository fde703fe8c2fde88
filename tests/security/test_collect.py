"""``python -m dfl.collect`` refuses what is not a launcher's run directory."""

from __future__ import annotations

from dfl.collect import main


def test_collect_names_a_directory_that_is_not_a_run(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / ".hydra" / "overrides.yaml") in err and "not found" in err
