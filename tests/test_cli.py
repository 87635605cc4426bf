"""The demo command runs on the embedded default network and verifies what it prints."""

from maso.cli import main


def test_demo_runs_and_checks(capsys):
    assert main(["demo", "--points", "2", "--width", "30"]) == 0
    out = capsys.readouterr().out
    assert "all checks passed: True" in out
    assert "distinct codes" in out and "region:" in out and "map   :" in out


def test_demo_other_widths(capsys):
    assert main(["demo", "--hidden", "5", "--seed", "3", "--points", "1", "--width", "20"]) == 0


def test_regions_command_certifies(capsys):
    assert main(["regions", "--widths", "3", "6", "6", "1", "--verify-points", "200"]) == 0
    out = capsys.readouterr().out
    assert "regions in" in out and "certificate: OK" in out
