"""The demo command runs on the embedded default network and verifies what it prints."""

from maso.cli import main


def test_demo_runs_and_checks(capsys):
    assert main(["demo", "--points", "2", "--width", "30"]) == 0
    out = capsys.readouterr().out
    assert "all checks passed: True" in out
    assert "distinct codes" in out and "region:" in out and "map   :" in out


def test_demo_other_widths(capsys):
    assert main(["demo", "--hidden", "5", "--seed", "3", "--points", "1", "--width", "20"]) == 0
