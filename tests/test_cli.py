"""CLI: commands run, bad input gives one clear line (never a traceback)."""

import subprocess
import sys

import pytest

from cnnlab.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "cnnlab.cli", *args], capture_output=True, text=True, timeout=300)


def test_models_table_lists_the_zoo(capsys):
    assert main(["models", "resnet*", "--no-macs"]) == 0
    out = capsys.readouterr().out
    assert "resnet50" in out and "25,557,032" in out and "resnet18" in out
    assert "vgg16" not in out


def test_unknown_model_is_one_line_with_suggestion():
    proc = run_cli("inspect", "resnet5")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown model 'resnet5'" in lines[0] and "resnet50" in lines[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("argv", [["models", "--bogus"], ["no-such-command"]])
def test_argparse_errors_exit_2(argv):
    proc = run_cli(*argv)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


@pytest.mark.parametrize("pattern, match", [("resnt50", "did you mean resnet50"), ("zz*", "no model matches 'zz\\*'")])
def test_models_pattern_matching_nothing_is_an_error(pattern, match):
    from cnnlab.errors import UnknownModelError
    from cnnlab.zoo import zoo_rows

    with pytest.raises(UnknownModelError, match=match):
        zoo_rows(pattern, macs=False)
