"""The ``maso`` command: the demo, certified enumeration, JSON output, and how it ends: a user mistake is one line
on stderr and exit code 2, a failed certificate 3, Ctrl-C 130 (the checkpoint kept), a closed pipe quiet, and
an unexpected error (a bug) keeps its traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import maso
from maso import cli
from maso.cli import main

ROOT = Path(__file__).resolve().parents[2]


def run_maso(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """``python -m maso ARGS`` in a fresh process, from the repository root."""
    return subprocess.run([sys.executable, "-m", "maso", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, **kw)


def one_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


# ------------------------------------------------------------------------------------------------ success
def test_demo_runs_and_checks(capsys, tmp_path):
    assert main(["demo", "--points", "2", "--width", "30", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "all checks passed: True" in out
    assert "distinct codes" in out and "region:" in out and "map   :" in out


def test_demo_other_widths(capsys, tmp_path):
    assert main(["demo", "--hidden", "5", "--seed", "3", "--points", "1", "--width", "20", "--out", str(tmp_path)]) == 0


def test_demo_with_no_points_runs_the_rest(capsys, tmp_path):
    """--points 0 used to crash in affine_at on the empty batch (bad_inputs #90)."""
    assert main(["demo", "--points", "0", "--width", "20", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "input 0" not in out and "exact enumeration" in out and "all checks passed: True" in out


def test_regions_command_certifies(capsys):
    assert main(["regions", "--widths", "3", "6", "6", "1", "--verify-points", "200"]) == 0
    out = capsys.readouterr().out
    assert "regions in" in out and "certificate: OK" in out


def test_regions_json_is_one_object_with_every_region(capsys):
    assert main(["regions", "--widths", "2", "4", "1", "--json"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)  # the whole of stdout: no prose around it
    regions = maso.enumerate_regions(maso.mlp([2, 4, 1], seed=0), maso.Box(-1, 1), progress=False)
    assert data["n_regions"] == len(regions) == len(data["regions"])
    assert data["slivers"] == 0 and isinstance(data["stats"], dict)
    cert = data["certificate"]
    assert cert["ok"] is True and cert["n_regions"] == len(regions) and "summary" in cert
    assert {tuple(r["code"]) for r in data["regions"]} == {tuple(r.code.tolist()) for r in regions}
    for r in data["regions"]:
        assert len(r["interior_point"]) == 2
        assert maso.mlp([2, 4, 1], seed=0).codes(r["interior_point"]).tolist() == r["code"]
    assert main(["regions", "--widths", "2", "4", "1", "--json", "--no-verify"]) == 0
    assert json.loads(capsys.readouterr().out)["certificate"] is None


def test_version_and_help_list_the_exit_codes(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"maso {maso.__version__}"
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "exit codes" in out and "130" in out and "FAILED" in out
    assert main(["regions", "--help"]) == 0
    assert "--json" in capsys.readouterr().out


def test_a_file_that_is_not_a_checkpoint_is_exit_code_2(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    assert main(["regions", "--widths", "2", "4", "1", "--checkpoint", str(notes)]) == cli.EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == "" and "notes.txt" in one_line(captured.err)
    assert notes.read_text() == "my notes\n"


def test_python_dash_m_maso_and_a_mistake_in_a_real_process():
    res = run_maso("--version", timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == f"maso {maso.__version__}" and res.stderr == ""
    res = run_maso("regions", "--widths", "2", "4", "1", "--box", "-1", timeout=60)
    assert res.returncode == 2 and res.stdout == ""
    assert "--box" in one_line(res.stderr)


# ----------------------------------------------------------------------------------------- user mistakes
@pytest.mark.parametrize("argv, says", [
    (["regions", "--box", "-1"], "--box"),
    (["regions", "--box", "0"], "--box"),
    (["regions", "--box", "nan"], "--box"),
    (["regions", "--box", "abc"], "--box"),
    (["regions", "--widths", "2"], "d_in and d_out"),
    (["regions", "--widths", "2", "-3", "1"], "--widths"),
    (["regions", "--widths", "2", "100000", "100000", "1"], "parameters"),
    (["regions", "--widths", "2", "4", "1", "--verify-points", "0"], "--verify-points"),
    (["regions", "--widths", "2", "4", "1", "--verify-points", "-5"], "--verify-points"),
    (["regions", "--widths", "2", "4", "1", "--seed", "-1"], "--seed"),
    (["regions", "--widths", "2", "4", "1", "--seed", "99999999999999999999"], "--seed"),
    (["regions", "--widths", "2", "4", "1", "--tol", "inf"], "--tol"),
    (["regions", "--widths", "2", "4", "1", "--tol", "1e-15"], "tol"),              # refused by enumerate_regions
    (["regions", "--workers", "0"], "--workers"),
    (["regions", "--widths", "2", "4", "1", "--checkpoint", "/nonexistent_dir_maso/x.ckpt"], "does not exist"),
    (["regions", "--activation", "gelu"], "invalid choice"),
    (["regions", "--json=yes"], "--json"),
    (["demo", "--points", "-1"], "--points"),
    (["demo", "--points", "100000000"], "--points"),
    (["demo", "--width", "0"], "--width"),
    (["demo", "--hidden", "0"], "--hidden"),
    (["demo", "--seed", "1.5"], "--seed"),
    ([], "required"),
    (["enumerate"], "invalid choice"),
])
def test_a_user_mistake_is_one_line_and_exit_code_2(argv, says, capsys, monkeypatch):
    if says != "tol":  # the command's own checks: refused before any work
        monkeypatch.setattr(maso, "enumerate_regions", _no_work)
    assert main(argv) == cli.EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    line = one_line(captured.err)
    assert "error" in line and says in line


def _no_work(*args, **kwargs):
    raise AssertionError("the command started enumerating before refusing its arguments")


def test_a_checkpoint_directory_is_refused(tmp_path, capsys):
    assert main(["regions", "--widths", "2", "4", "1", "--checkpoint", str(tmp_path)]) == cli.EXIT_USAGE
    assert "is a directory" in one_line(capsys.readouterr().err)


def test_a_checkpoint_of_another_run_is_exit_code_2(tmp_path, capsys):
    ckpt = str(tmp_path / "c.ckpt")
    assert main(["regions", "--widths", "2", "4", "1", "--seed", "1", "--checkpoint", ckpt, "--no-verify"]) == 0
    size = os.path.getsize(ckpt)
    capsys.readouterr()
    assert main(["regions", "--widths", "2", "4", "1", "--seed", "0", "--checkpoint", ckpt]) == cli.EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == "" and "another run" in one_line(captured.err)
    assert os.path.getsize(ckpt) == size


# ------------------------------------------------------------------------------ other ways a run ends
class _FailedReport:
    ok = False
    n_regions = 0

    def __str__(self) -> str:
        return "FAILED: made up for the test"


def test_a_failed_certificate_has_its_own_exit_code(monkeypatch, capsys):
    monkeypatch.setattr(maso.regions.RegionSet, "verify", lambda self, **kw: _FailedReport())
    assert main(["regions", "--widths", "2", "4", "1"]) == cli.EXIT_FAILED == 3
    assert "certificate: FAILED" in capsys.readouterr().out
    assert main(["regions", "--widths", "2", "4", "1", "--json"]) == cli.EXIT_FAILED
    assert json.loads(capsys.readouterr().out)["certificate"]["ok"] is False


def test_a_bug_keeps_its_traceback(monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(maso, "enumerate_regions", broken)
    with pytest.raises(ZeroDivisionError):  # the interpreter prints it and exits with 1
        main(["regions", "--widths", "2", "4", "1"])


@pytest.mark.parametrize("error, code", [
    (maso.errors.WorkerError("a worker process died"), cli.EXIT_ERROR),
    (OSError(28, "No space left on device"), cli.EXIT_ERROR),
    (MemoryError(), cli.EXIT_ERROR),
    (PermissionError(13, "Permission denied"), cli.EXIT_USAGE),
    (maso.errors.CheckpointError("unreadable checkpoint"), cli.EXIT_USAGE),
])
def test_failures_of_the_machine_are_one_line(error, code, monkeypatch, capsys):
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(maso, "enumerate_regions", fail)
    assert main(["regions", "--widths", "2", "4", "1"]) == code
    one_line(capsys.readouterr().err)


def test_a_closed_pipe_is_quiet(tmp_path):
    """``maso demo | head -1``: the reader leaves after one line; maso ends quietly (bad_inputs #93)."""
    with subprocess.Popen([sys.executable, "-u", "-m", "maso", "demo", "--points", "1", "--width", "20", "--out",
                           str(tmp_path)], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as p:
        assert p.stdout.readline().startswith(b"maso demo")
        p.stdout.close()  # later lines (after the enumeration) meet a closed pipe
        err = p.stderr.read().decode()
        assert p.wait(timeout=120) == cli.EXIT_PIPE
    assert err == ""


def test_ctrl_c_keeps_the_checkpoint_and_says_one_line(tmp_path):
    """SIGINT to the command and its workers (as Ctrl-C sends it to the whole process group) during a
    checkpointed run with two workers: one line, exit code 130, the checkpoint kept (bad_inputs #94)."""
    ckpt = tmp_path / "c.ckpt"
    with subprocess.Popen([sys.executable, "-m", "maso", "regions", "--widths", "4", "16", "16", "16", "1",
                           "--workers", "2", "--checkpoint", str(ckpt), "--no-verify"], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True) as p:
        try:
            # wait until the workers run: the checkpoint has its header, then at least one finished task
            size = _wait_for(lambda: ckpt.exists() and ckpt.stat().st_size, p)
            _wait_for(lambda: ckpt.stat().st_size > size, p)
            assert p.poll() is None, "the run ended before it could be interrupted"
            os.killpg(p.pid, signal.SIGINT)
            out, err = p.communicate(timeout=90)
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == cli.EXIT_INTERRUPTED == 130, err
    line = one_line(err)
    assert "interrupted" in line and "kept" in line and str(ckpt) in line
    assert out == "" and ckpt.exists()


def test_ctrl_c_during_a_tiled_slice_keeps_its_checkpoint_and_resumes(tmp_path):
    """``maso slice --tiles N --checkpoint F`` interrupted by Ctrl-C after some tiles: one line, exit code 130,
    the checkpoint kept; the same command again resumes to the regions of an uninterrupted slice."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
                                torch.nn.Linear(64, 2))
    torch.save(model, tmp_path / "m.pt")
    ckpt = tmp_path / "s.ckpt"
    args = ["slice", "--model", str(tmp_path / "m.pt"), "--through", "0,0,0", "1,0,0", "0,1,0", "--window", "-2", "3",
            "--tiles", "8", "--checkpoint", str(ckpt), "--json"]
    from maso.regions._checkpoint import _scan

    def tiles_recorded() -> int:
        return sum(m.get("kind") == "task" for _, _, m, _ in _scan(ckpt.read_bytes(), 0)[0]) if ckpt.exists() else 0

    with subprocess.Popen([sys.executable, "-m", "maso", *args], cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, start_new_session=True) as p:
        try:
            _wait_for(lambda: tiles_recorded() >= 2, p)
            os.killpg(p.pid, signal.SIGINT)
            out, err = p.communicate(timeout=90)
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == cli.EXIT_INTERRUPTED, err
    line = one_line(err)
    assert "interrupted" in line and "kept" in line and str(ckpt) in line and out == ""
    done = tiles_recorded()
    assert 2 <= done < 64
    resumed = run_maso(*args)
    assert resumed.returncode == 0, resumed.stderr
    data = json.loads(resumed.stdout)
    assert data["stats"]["tiles_resumed"] == done and data["checks"]["ok"] is True
    net = maso.from_torch(model, torch.zeros(1, 3))
    plane = maso.Plane.through_points(np.zeros(3), np.eye(3)[0], np.eye(3)[1])
    whole = maso.slice_regions(net, plane, (-2, -2), (3, 3), tiles=8)
    assert data["n_regions"] == len(whole)
    assert sorted(map(tuple, (r["code"] for r in data["regions"]))) == sorted(map(tuple, whole.codes.tolist()))


def _wait_for(condition, p: subprocess.Popen, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and p.poll() is None:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("the run ended, or never got there, before it could be interrupted")


def test_closed_stdout_memory_budget_and_empty_checkpoint(tmp_path):
    """stdout closed at start: quiet 141; --max-memory too small: the machine's limit, exit 1, one line (not a
    user mistake); an empty --checkpoint and a bad --max-memory: exit 2, one line."""
    p = subprocess.run([sys.executable, "-m", "maso", "demo", "--out", str(tmp_path)], cwd=ROOT, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True, timeout=120, pass_fds=(),
                       preexec_fn=lambda: os.close(1))
    assert p.returncode == cli.EXIT_PIPE and p.stderr == ""
    p = run_maso("regions", "--widths", "3", "16", "16", "1", "--max-memory", "1000")
    assert p.returncode == cli.EXIT_ERROR and p.stderr.count("\n") == 1 and "memory budget of 1000" not in p.stderr
    assert "KiB" in p.stderr and "Traceback" not in p.stderr
    for args in (("--checkpoint", ""), ("--max-memory", "lots"), ("--max-memory", "-1")):
        p = run_maso("regions", "--widths", "2", "4", "1", *args)
        assert p.returncode == cli.EXIT_USAGE and p.stderr.count("\n") == 1, args
    p = run_maso("regions", "--widths", "2", "4", "1", "--max-memory", "8G")
    assert p.returncode == cli.EXIT_OK
