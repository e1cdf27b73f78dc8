"""A real multi-node Ray cluster on one machine, on 127.0.0.1: `ray start --head` and `ray start
--address` processes, each node with its own resources, started and stopped by pid.

For the fault bench (`sonic-ray bench faults`: a worker node lost mid-run) and the tests. Each node
is its own `ray start --block` process in a new process group, with free ports for everything it
opens and `--node-ip-address=127.0.0.1`, so nothing listens beyond loopback and the GCS records the
node under 127.0.0.1 (checked: `ClusterNode.ip`). The head gets its own `--temp-dir` and auth token,
so the cluster never joins, nor is joined by, another Ray on the machine; `ray stop` is never used
(it stops every Ray instance of the user). A node is stopped by SIGTERM to its `ray start` (which
stops the processes it started), then SIGKILL to any process still naming the cluster's temp dir.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

VENV_BIN = Path(sys.executable).parent
# The head notices a dead node within ~3 s instead of Ray's default ~30 s (health checks).
FAST_HEALTH_CHECKS = {
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
    "RAY_health_check_timeout_ms": "1000",
}


LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray's loopback-only mode
AUTH_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_TOKEN")


def _reload_auth() -> None:
    """Make this process's Ray re-read the auth mode and token from the environment (both are
    cached on first use), as Ray's own tests do when they switch tokens."""
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def free_port(ip: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def _node_ports(ip: str) -> dict[str, int]:
    keys = (
        "--node-manager-port",
        "--object-manager-port",
        "--dashboard-agent-listen-port",
        "--dashboard-agent-grpc-port",
        "--runtime-env-agent-port",
        "--metrics-export-port",
    )
    return {k: free_port(ip) for k in keys}


# `ray start` (Ray's own CLI) with 127.0.0.1 kept as given instead of resolved to the routable IP.
_RAY_START_KEEPING_LOOPBACK = (
    "import sys; from ray._private import services; services.resolve_ip_for_localhost = lambda host: host; "
    "from ray.scripts.scripts import main; sys.argv[0] = 'ray'; sys.exit(main())"
)


@dataclass
class ClusterNode:
    """One `ray start --block` process and what Ray started under it."""

    name: str
    proc: subprocess.Popen
    log_path: Path
    resources: dict[str, float]
    ip: str
    node_manager_port: int
    node_id: str | None = None

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def processes(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            return []

    def raylet_pid(self) -> int:
        found = [p.pid for p in self.processes() if p.name() == "raylet"]
        if not found:
            raise RuntimeError(
                f"node {self.name}: no raylet under ray start (pid {self.proc.pid}): {self.log()}"
            )
        return found[0]

    def log(self) -> str:
        return self.log_path.read_text()[-3000:] if self.log_path.is_file() else ""


@dataclass
class LocalCluster:
    """`start()` the head, `add_node(...)` workers, `kill_raylet(node)` to lose one, `stop()` all."""

    head_cpus: float = 2
    head_resources: dict[str, float] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)  # extra environment of every node (and its workers)

    def __post_init__(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="src-", dir="/tmp"))  # short: Ray's socket paths are long
        self.token_path = self.tmp / "auth_token"
        self.token_path.write_text(secrets.token_hex(24))
        self.gcs_port = free_port()
        self.nodes: list[ClusterNode] = []

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    def node_env(self) -> dict[str, str]:
        """Environment of the nodes and of a driver joining them: this cluster's token, the
        interpreter's bin first on PATH, fast health checks; RAY_ADDRESS removed."""
        env = {
            **os.environ,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(self.token_path),
            "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
            **FAST_HEALTH_CHECKS,
            **self.env,
        }
        env.pop("RAY_ADDRESS", None)
        return env

    # ---- lifecycle --------------------------------------------------------------------------
    def _start(self, name: str, args: list[str], resources: dict[str, float], cpus: float) -> ClusterNode:
        # Ray turns 127.0.0.1 (as --node-ip-address, and in --address) into the machine's routable
        # IP, except in its local-only mode, which `ray start --address` refuses. So the head runs
        # in local-only mode on 127.0.0.1, and each worker node on its own loopback address
        # 127.0.0.k (all of 127/8 is loopback), through `ray start` with that one rewrite turned off.
        head = not self.nodes
        ip = "127.0.0.1" if head else f"127.0.0.{len(self.nodes) + 1}"
        env = {**self.node_env(), LOCAL_ONLY_ENV: "0" if head else "1"}
        ports = _node_ports(ip)
        ray_start = [str(VENV_BIN / "ray")] if head else [sys.executable, "-c", _RAY_START_KEEPING_LOOPBACK]
        argv = [
            *ray_start,
            "start",
            *args,
            f"--node-ip-address={ip}",
            f"--num-cpus={cpus:g}",
            "--num-gpus=0",
            f"--resources={json.dumps(resources)}",
            f"--temp-dir={self.tmp / 'ray'}",
            "--block",
            "--disable-usage-stats",
            *[f"{k}={v}" for k, v in ports.items()],
        ]
        log_path = self.tmp / f"{name}.log"
        with open(log_path, "w") as log:
            proc = subprocess.Popen(
                argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        node = ClusterNode(name, proc, log_path, resources, ip, ports["--node-manager-port"])
        self.nodes.append(node)
        return node

    def start(self, timeout_s: float = 180.0) -> LocalCluster:
        head = self._start(
            "head",
            [
                "--head",
                f"--port={self.gcs_port}",
                "--include-dashboard=false",
                f"--ray-client-server-port={free_port()}",
            ],
            self.head_resources,
            self.head_cpus,
        )
        self.wait_for_node(head, timeout_s)
        return self

    def add_node(
        self,
        name: str,
        *,
        cpus: float = 1,
        resources: dict[str, float] | None = None,
        timeout_s: float = 180.0,
    ) -> ClusterNode:
        node = self._start(name, [f"--address={self.address}"], dict(resources or {}), cpus)
        self.wait_for_node(node, timeout_s)
        return node

    def alive_nodes(self) -> list[dict]:
        """The GCS's live nodes (`ray.nodes()` rows) as seen from a short-lived client process, so
        that a driver need not be connected."""
        code = (
            f"import json, ray; ray.init(address={self.address!r}, log_to_driver=False); "
            "print(json.dumps([n for n in ray.nodes() if n['Alive']], default=str))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={**self.node_env(), LOCAL_ONLY_ENV: "0"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        if out.returncode != 0:
            return []
        return json.loads(out.stdout.strip().splitlines()[-1])

    def wait_for_node(self, node: ClusterNode, timeout_s: float) -> None:
        """Until the GCS lists a live node whose raylet is `node`'s; records its node id and checks
        that it registered under 127.0.0.1."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not node.alive:
                raise RuntimeError(
                    f"ray start for {node.name} exited with {node.proc.returncode}: {node.log()}"
                )
            for row in self.alive_nodes():
                if int(row["NodeManagerPort"]) == node.node_manager_port:
                    if row["NodeManagerAddress"] != node.ip:
                        raise RuntimeError(
                            f"node {node.name} registered as {row['NodeManagerAddress']}, not {node.ip}"
                        )
                    node.node_id = row["NodeID"]
                    return
            time.sleep(1.0)
        raise TimeoutError(f"node {node.name} did not join in {timeout_s} s: {node.log()}")

    def connect(self, **init_kwargs) -> None:
        """`ray.init` this process as a driver on the head (127.0.0.1), with the cluster's token;
        `disconnect()` undoes it (the process's own auth settings back)."""
        import ray
        from ray._private import ray_constants

        self._saved_auth = {k: os.environ.get(k) for k in AUTH_ENV}
        os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(self.token_path)})
        os.environ.pop("RAY_AUTH_TOKEN", None)
        _reload_auth()
        saved_flag = ray_constants.ENABLE_RAY_CLUSTER
        ray_constants.ENABLE_RAY_CLUSTER = False  # the driver's node address stays 127.0.0.1
        try:
            ray.init(address=self.address, **init_kwargs)
        finally:
            ray_constants.ENABLE_RAY_CLUSTER = saved_flag

    def disconnect(self) -> None:
        import ray

        ray.shutdown()
        for k, v in getattr(self, "_saved_auth", {}).items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        _reload_auth()

    def kill_raylet(self, node: ClusterNode) -> int:
        """SIGKILL `node`'s raylet (a lost machine, as the head sees it); -> its pid. Its `ray start`
        then stops the node's other processes."""
        pid = node.raylet_pid()
        os.kill(pid, signal.SIGKILL)
        return pid

    def stop_node(self, node: ClusterNode, timeout_s: float = 60.0) -> None:
        if node.alive:
            node.proc.send_signal(signal.SIGTERM)  # `ray start --block` stops what it started
            try:
                node.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(node.proc.pid, signal.SIGKILL)
                node.proc.wait(10)

    def stop(self) -> list[int]:
        """Stop every node (workers first); -> pids that had to be killed one by one afterwards."""
        for node in reversed(self.nodes):
            self.stop_node(node)
        time.sleep(1.0)
        leftovers = []
        for p in psutil.process_iter(["pid", "cmdline"]):
            if str(self.tmp) in " ".join(p.info["cmdline"] or []) and p.pid != os.getpid():
                leftovers.append(p.pid)
                try:
                    p.kill()
                except psutil.Error:
                    pass
        shutil.rmtree(self.tmp, ignore_errors=True)
        return leftovers

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
