"""A real Ray head on 127.0.0.1 for tests, started from the docs' `ray start --head` command (the
docs' own flags kept; `sonic_ray.bench.cluster.LocalCluster` is the multi-node one, flags its own).

The machine is shared: other developers run their own Ray instances, so this head gets free ports for
everything Ray opens, its own `--temp-dir` and its own auth token file. It runs with `--block` in a
new process group and is stopped by SIGTERM to `ray start` (the group is killed only if that hangs;
then any process still naming its temp dir, by pid). `ray stop` is not used: it stops every Ray instance of
the user on the machine.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from sonic_ray.bench.cluster import VENV_BIN, free_port

# Flags of the docs' command whose values this head replaces with free ports / the loopback host.
PORT_FLAGS = ("--port", "--dashboard-port", "--metrics-export-port")


@dataclass
class LocalHead:
    doc_command: str
    num_cpus: int = 2
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="srh-", dir="/tmp"))  # short: Ray's socket paths are long
        self.token = secrets.token_hex(24)
        self.token_path = self.tmp / "auth_token"
        self.token_path.write_text(self.token)
        self.ports = {flag: free_port() for flag in PORT_FLAGS}
        self.proc: subprocess.Popen | None = None

    # ---- addresses --------------------------------------------------------------------------
    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['--dashboard-port']}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['--metrics-export-port']}/metrics"

    @property
    def auth_header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def client_env(self) -> dict[str, str]:
        """Environment for a client (`ray job submit`): token auth on, this head's token, venv on PATH."""
        return {
            **os.environ,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(self.token_path),
            "RAY_ADDRESS": self.dashboard_url,
            "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
            **self.extra_env,
        }

    # ---- lifecycle --------------------------------------------------------------------------
    def command(self) -> list[str]:
        args = shlex.split(self.doc_command)
        assert args[:3] == ["ray", "start", "--head"], f"not a head start command: {self.doc_command}"
        out = [str(VENV_BIN / "ray"), "start", "--head"]
        for arg in args[3:]:
            flag, _, value = arg.partition("=")
            if flag in self.ports:
                value = str(self.ports[flag])
            elif flag == "--dashboard-host":
                value = "127.0.0.1"
            out.append(f"{flag}={value}" if value else flag)
        isolation = {
            "--node-ip-address": "127.0.0.1",
            "--temp-dir": str(self.tmp / "ray"),
            "--num-cpus": str(self.num_cpus),
            "--ray-client-server-port": free_port(),
            "--dashboard-agent-listen-port": free_port(),
            "--dashboard-agent-grpc-port": free_port(),
            "--runtime-env-agent-port": free_port(),
            "--node-manager-port": free_port(),
            "--object-manager-port": free_port(),
        }
        out += [f"{k}={v}" for k, v in isolation.items()] + ["--block", "--disable-usage-stats"]
        return out

    def start(self, timeout_s: float = 180.0) -> LocalHead:
        env = {k: v for k, v in self.client_env().items() if k != "RAY_ADDRESS"}
        self.log = open(self.tmp / "head.log", "w")
        self.proc = subprocess.Popen(
            self.command(), env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ray start exited with {self.proc.returncode}: {self.head_log()[-3000:]}")
            if self.jobs_api_status(with_token=True) == 200:
                return self
            time.sleep(1.0)
        raise TimeoutError(f"the head's Jobs API did not come up in {timeout_s} s: {self.head_log()[-3000:]}")

    def jobs_api_status(self, *, with_token: bool) -> int | None:
        req = urllib.request.Request(
            f"{self.dashboard_url}/api/jobs/", headers=self.auth_header if with_token else {}
        )
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            return None

    def scrape(self) -> str:
        try:
            with urllib.request.urlopen(self.metrics_url, timeout=5) as r:
                return r.read().decode()
        except OSError:
            return ""

    def head_log(self) -> str:
        return (self.tmp / "head.log").read_text() if (self.tmp / "head.log").is_file() else ""

    def stop(self, timeout_s: float = 60.0) -> list[int]:
        """Stop this head's processes only; returns the pids that had to be killed one by one."""
        if self.proc is not None and self.proc.poll() is None:
            # `ray start --block` stops the processes it started when it gets SIGTERM (~7 s here);
            # signalling the whole group at once instead makes it hang until killed.
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        time.sleep(1.0)
        leftovers = []
        for p in psutil.process_iter(["pid", "cmdline"]):
            cmd = " ".join(p.info["cmdline"] or [])
            if str(self.tmp) in cmd and p.pid != os.getpid():
                leftovers.append(p.pid)
                try:
                    p.kill()
                except psutil.Error:
                    pass
        if hasattr(self, "log"):
            self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)  # token, session dirs and logs of this head
        return leftovers
