"""`sonic-ray view`: bad input ends in one message naming it (before any server starts); the server
binds 127.0.0.1 unless told, prints its URL, serves the page and stops cleanly on Ctrl-C."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from view_builders import view_store

from sonic_ray.cli import main
from sonic_ray.view.server import PortBusy, check_port, host_warning


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return view_store(tmp_path_factory.mktemp("cli") / "v.parquet")


def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_busy_port_is_named(store, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(PortBusy, match=f"127.0.0.1:{port}"):
            check_port("127.0.0.1", port)
        assert main(["view", "motions", str(store), "--port", str(port)]) == 2
    assert re.fullmatch(
        rf"sonic-ray view motions: cannot listen on 127\.0\.0\.1:{port} \(.*\); pick another --port",
        _one_error(capsys),
    )


def test_unknown_clip_and_bad_store_are_named(store, tmp_path, capsys):
    assert main(["view", "motions", str(store), "--clip", "sway7", "--port", "0"]) == 2
    assert _one_error(capsys).startswith(
        f"sonic-ray view motions: {store}: no clip named 'sway7'; did you mean ["
    )
    assert main(["view", "motions", str(tmp_path / "missing.parquet"), "--port", "0"]) == 2
    assert _one_error(capsys).endswith("missing.parquet: motion store not found")


def test_bad_policy_sources_are_named(store, tmp_path, capsys):
    assert main(["view", "policy", "--checkpoint", str(tmp_path / "no_run"), "--port", "0"]) == 2
    assert "no_run" in _one_error(capsys)
    assert main(["view", "policy", "--onnx", str(tmp_path / "policy_g1.onnx"), "--port", "0"]) == 2
    assert _one_error(capsys) == "sonic-ray view policy: --onnx needs --motions STORE (the reference clips)"
    assert main(["view", "policy", "--onnx", str(tmp_path / "policy_g1.onnx"), "--motions", str(store)]) == 2
    assert "policy_g1.onnx: no such ONNX file" in _one_error(capsys)


def test_only_other_hosts_warn():
    assert host_warning("127.0.0.1") is None and host_warning("localhost") is None
    assert "reachable from other machines" in host_warning("0.0.0.0")


@pytest.mark.slow
def test_serves_on_localhost_prints_url_and_stops_on_ctrl_c(store):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sonic_ray", "view", "motions", str(store), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()
        m = re.match(
            r"sonic-ray view motions: open (http://127\.0\.0\.1:(\d+)) in a browser \(Ctrl-C stops\)", line
        )
        assert m, (line, proc.stderr.read() if proc.poll() is not None else "")
        with urllib.request.urlopen(m.group(1), timeout=30) as r:
            assert r.status == 200 and b"<html" in r.read(2000).lower()
        with socket.socket() as s:  # bound to the loopback address only
            assert s.connect_ex(("127.0.0.1", int(m.group(2)))) == 0
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "sonic-ray view: stopped" in err and "Traceback" not in err


def test_training_prints_the_command_that_views_its_latest_checkpoint(tmp_path):
    from sonic_ray.cli import build_parser
    from sonic_ray.config import load_config
    from sonic_ray.train.cli import view_command

    cfg = load_config([f"motions.store={tmp_path / 'my store.parquet'}"])
    line = view_command(tmp_path / "runs" / "demo-1", cfg)
    run, store = f"{tmp_path}/runs/demo-1", f"'{tmp_path}/my store.parquet'"
    assert line == f"sonic-ray view policy --checkpoint {run} --motions {store}"
    import shlex

    args = build_parser().parse_args(shlex.split(line)[1:])
    assert args.checkpoint == str(tmp_path / "runs" / "demo-1")
    assert args.motions == str(tmp_path / "my store.parquet")
