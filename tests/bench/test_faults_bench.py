"""`sonic-ray bench faults --json`: the report's shape, on the faults that need no Ray."""

from __future__ import annotations

import json

import pytest

from sonic_ray.bench.faults import FAULTS
from sonic_ray.cli import main

KEYS = {"recovered", "iterations_lost", "data_lost", "seconds"}


def test_every_fault_the_issue_names_is_there():
    assert FAULTS == (
        "runner_sigkill",
        "node_loss",
        "driver_sigterm",
        "corrupt_checkpoint",
        "nan_loss",
        "concurrent_import",
    )


def test_corrupt_checkpoint_report(tmp_path, capsys):
    assert (
        main(["bench", "faults", "--json", "--only", "corrupt_checkpoint", "--work-dir", str(tmp_path)]) == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert list(out["faults"]) == ["corrupt_checkpoint"]
    r = out["faults"]["corrupt_checkpoint"]
    assert KEYS <= set(r)
    assert r["recovered"] is True and r["data_lost"] is False and r["iterations_lost"] == 1
    assert "skipping iter_000002" in r["message"]


@pytest.mark.slow  # two `motions import` processes (seconds each)
def test_concurrent_import_report(tmp_path, capsys):
    assert (
        main(["bench", "faults", "--json", "--only", "concurrent_import", "--work-dir", str(tmp_path)]) == 0
    )
    r = json.loads(capsys.readouterr().out)["faults"]["concurrent_import"]
    assert KEYS <= set(r) and r["recovered"] and not r["data_lost"]
    assert r["clips_in_store"] == r["clips_expected"] > 0


def test_an_unknown_fault_is_one_line_and_exit_2(capsys):
    assert main(["bench", "faults", "--only", "disk_full"]) == 2
    err = capsys.readouterr().err
    assert "disk_full" in err and err.strip().count("\n") == 0
