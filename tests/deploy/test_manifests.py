"""deploy/: manifests parse and carry what KubeRay and the Ray launcher need; their commands are real."""

import contextlib
import json
import os
import re
import shlex
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml
from doc_blocks import DEPLOY_README, REPO, doc_block, doc_block_names

from sonic_ray.cli import build_parser
from sonic_ray.cluster import GAUGES, PROMETHEUS_PREFIX, RUNNER_GAUGES
from sonic_ray.config import config_dir, load_config
from sonic_ray.config.compose import ENV_CONFIG_DIR

DEPLOY = REPO / "deploy"
KUBERAY = DEPLOY / "ray" / "kuberay"
DOCS_WITH_COMMANDS = (
    REPO / "README.md",
    DEPLOY_README,
    REPO / "docs" / "SCALING.md",
    KUBERAY / "raycluster.yaml",
    KUBERAY / "rayjob.yaml",
)


def _load(path):
    return yaml.safe_load(path.read_text())


def _subcommands() -> set[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return set(sub.choices)


@contextlib.contextmanager
def best_preset(name: str):
    """A copy of configs/ holding exp/<name>.yaml (<name> = <sweep>_best) as `sonic-ray tune
    +exp=<sweep>` writes it (best.yaml, `tune.results.preset_yaml`) for a best trial at the sweep's
    first grid point (random keys at their first choice or low bound), in use while inside."""
    from sonic_ray.config.compose import compose, to_typed
    from sonic_ray.tune.results import preset_yaml
    from sonic_ray.tune.space import parse_search_space, trial_config

    sweep = name[: -len("_best")]
    assert (config_dir() / "exp" / f"{sweep}.yaml").is_file(), (
        f"+exp={name}: no sweep preset exp/{sweep}.yaml"
    )
    base = compose([f"+exp={sweep}"])
    cfg = to_typed(base)
    specs = parse_search_space(cfg.tune.search_space, cfg)
    assert specs, f"+exp={name}: the sweep preset {sweep} has an empty tune.search_space"
    params = {s.key: s.values[0] if s.values else s.bounds[0] for s in specs}
    text = preset_yaml(
        overrides=[f"+exp={sweep}"],
        trial_cfg=trial_config(base, params),
        params=params,
        experiment=name,
        header=f"test: best trial of {sweep} at its first grid point",
    )
    old = os.environ.get(ENV_CONFIG_DIR)
    with tempfile.TemporaryDirectory() as tmp:
        configs = Path(tmp) / "configs"
        shutil.copytree(config_dir(), configs)
        (configs / "exp" / f"{name}.yaml").write_text(text)
        os.environ[ENV_CONFIG_DIR] = str(configs)
        try:
            yield
        finally:
            if old is None:
                os.environ.pop(ENV_CONFIG_DIR, None)
            else:
                os.environ[ENV_CONFIG_DIR] = old


def check_sonic_ray_command(command: str) -> None:
    """`sonic-ray SUB OVERRIDES...`: the script exists, SUB is a real subcommand, overrides compose.
    `+exp=<sweep>_best` (the preset a sweep writes, copied into configs/exp/) composes against the
    preset `best_preset` generates for that sweep."""
    section = (REPO / "pyproject.toml").read_text().split("[project.scripts]", 1)[1].split("\n[", 1)[0]
    scripts = set(re.findall(r"^([\w-]+)\s*=", section, re.M))
    args = shlex.split(command)
    assert args[0] in scripts, f"{command}: {args[0]} is not a console script of the package"
    assert args[1] in _subcommands(), f"{command}: no subcommand {args[1]}"
    # Shell variables -> some path; usage placeholders ([OVERRIDES...]) dropped.
    overrides = [re.sub(r"\$(\w+)", r"/tmp/\1", a) for a in args[2:] if not re.fullmatch(r"\[[A-Z.]+\]", a)]
    presets = [m.group(1) for o in overrides if (m := re.match(r"\+exp=(\w+)$", o))]
    best = [p for p in presets if p.endswith("_best")]
    for p in presets:
        if p not in best:
            assert (config_dir() / "exp" / f"{p}.yaml").is_file(), f"{command}: no preset +exp={p}"
    with best_preset(best[0]) if best else contextlib.nullcontext():
        cfg = load_config(overrides)
    if best:
        assert cfg.experiment == best[0], command


@pytest.mark.slow  # builds the CLI parser (imports every command module) and composes: ~5 s cold
def test_docs_mark_the_commands_the_job_test_runs():
    assert {"head", "submit"} <= set(doc_block_names())
    assert doc_block("head").startswith("ray start --head ")
    submit = doc_block("submit")
    assert submit.startswith("ray job submit --working-dir . --runtime-env deploy/ray/runtime_env.yaml -- ")
    check_sonic_ray_command(submit.split(" -- ", 1)[1])


@pytest.mark.slow  # composes every command the docs show (~0.5 s each)
def test_every_sonic_ray_command_in_the_docs_and_manifests_is_real():
    commands = set()
    for path in DOCS_WITH_COMMANDS:
        for m in re.finditer(r"sonic-ray (?:train|tune)(?: [^\s`|&;]+)*", path.read_text()):
            commands.add(m.group(0))
    assert len(commands) >= 5, commands
    for command in sorted(commands):
        check_sonic_ray_command(command)


@pytest.mark.slow  # builds the CLI parser and composes a sweep, its best trial and the best preset (~3 s)
def test_a_best_preset_command_composes_with_the_preset_a_sweep_writes():
    check_sonic_ray_command("sonic-ray train +exp=tune_smoke_best algo.max_iterations=2")
    assert ENV_CONFIG_DIR not in os.environ or Path(os.environ[ENV_CONFIG_DIR]).is_dir()  # restored
    with pytest.raises(AssertionError, match="no sweep preset exp/nosuch.yaml"):
        check_sonic_ray_command("sonic-ray train +exp=nosuch_best")
    with pytest.raises(Exception, match="env.num_envs"):  # the overrides after the preset are composed too
        check_sonic_ray_command("sonic-ray train +exp=tune_smoke_best env.num_envs=0")


@pytest.mark.slow  # imports ray: ~1 s
def test_runtime_env_is_valid_for_ray():
    from ray.runtime_env import RuntimeEnv

    env = _load(DEPLOY / "ray" / "runtime_env.yaml")
    RuntimeEnv(**env)  # Ray's own validation of the fields
    assert all(isinstance(v, str) for v in env["env_vars"].values())
    assert (REPO / env["env_vars"]["SONIC_RAY_CONFIG_DIR"] / "base.yaml").is_file()


def _groups(spec):
    return [("head", spec["headGroupSpec"])] + [(g["groupName"], g) for g in spec["workerGroupSpecs"]]


def _check_cluster_spec(spec, where):
    import ray

    assert spec["rayVersion"] == ray.__version__, f"{where}: rayVersion"
    assert spec["authOptions"] == {"mode": "token"}, f"{where}: token auth must stay on"
    names = [name for name, _ in _groups(spec)]
    assert len(names) == len(set(names)), f"{where}: duplicate group names"
    for name, group in _groups(spec):
        params = group["rayStartParams"]
        assert all(isinstance(v, str) for v in params.values()), (
            f"{where} {name}: rayStartParams must be strings"
        )
        pod = group["template"]["spec"]
        (container,) = [c for c in pod["containers"] if c["name"].startswith("ray-")]
        assert container["image"] and ":" in container["image"], f"{where} {name}: image with a tag"
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        assert ports.get("metrics") == int(params["metrics-export-port"]), f"{where} {name}: metrics port"
        volumes = {v["name"] for v in pod.get("volumes", [])}
        for mount in container.get("volumeMounts", []):
            assert mount["name"] in volumes, f"{where} {name}: volume {mount['name']} not declared"
        limits = container["resources"]["limits"]
        if name != "head":
            assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"], f"{where} {name}"
            assert params["num-cpus"] == str(limits["cpu"]), f"{where} {name}: num-cpus = container cpu"
            if "num-gpus" in params:
                assert params["num-gpus"] == str(limits["nvidia.com/gpu"]), f"{where} {name}: num-gpus = GPUs"
            if "resources" in params:
                json.loads(json.loads(params["resources"]))  # KubeRay's quoted-JSON form
    return {name: group for name, group in _groups(spec)}


def test_raycluster_manifest():
    doc = _load(KUBERAY / "raycluster.yaml")
    assert (doc["apiVersion"], doc["kind"], doc["metadata"]["name"]) == (
        "ray.io/v1",
        "RayCluster",
        "sonic-ray",
    )
    groups = _check_cluster_spec(doc["spec"], "raycluster.yaml")
    assert groups["head"]["rayStartParams"]["num-cpus"] == "0"  # no runners or learners on the head
    sim = json.loads(json.loads(groups["cpu-sim"]["rayStartParams"]["resources"]))
    assert sim == {"sonic_sim": int(groups["cpu-sim"]["rayStartParams"]["num-cpus"])}


@pytest.mark.slow  # builds the CLI parser and composes the release preset
def test_rayjob_manifest_runs_a_real_command_on_the_same_cluster():
    job = _load(KUBERAY / "rayjob.yaml")
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    assert job["spec"]["rayClusterSpec"] == _load(KUBERAY / "raycluster.yaml")["spec"]
    assert job["spec"]["shutdownAfterJobFinishes"] is True
    yaml.safe_load(job["spec"]["runtimeEnvYAML"])
    entry = job["spec"]["entrypoint"]
    assert entry.startswith("sonic-ray train +exp=sonic_release ") and "run_dir=/mnt/runs/" in entry
    check_sonic_ray_command(entry)


def test_release_preset_fits_one_gpu_node_by_resources():
    cfg = load_config(["+exp=sonic_release"])
    r = cfg.ray
    cpus = r.num_env_runners * r.cpus_per_env_runner + r.num_learners * r.cpus_per_learner
    gpus = r.num_env_runners * r.gpus_per_env_runner + r.num_learners * r.gpus_per_learner
    gpu = _check_cluster_spec(_load(KUBERAY / "raycluster.yaml")["spec"], "raycluster.yaml")["gpu"]
    assert cpus <= float(gpu["rayStartParams"]["num-cpus"]) and gpus <= float(
        gpu["rayStartParams"]["num-gpus"]
    )
    launcher = _load(DEPLOY / "ray" / "cluster.yaml")["available_node_types"]["gpu_8x"]["resources"]
    assert cpus <= launcher["CPU"] and gpus <= launcher["GPU"]


def test_cluster_launcher_yaml_validates_against_rays_schema():
    import importlib.resources

    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    cfg = _load(DEPLOY / "ray" / "cluster.yaml")
    schema = json.loads((importlib.resources.files("ray.autoscaler") / "ray-schema.json").read_text())
    jsonschema.validate(cfg, schema)
    validate_config(prepare_config(cfg))
    head_start = " ".join(cfg["head_start_ray_commands"])
    doc_flags = [a for a in shlex.split(doc_block("head")) if a.startswith("--")]
    for flag in doc_flags:  # the launcher starts the head the way the docs do
        assert flag in head_start, flag
    assert "RAY_AUTH_MODE=token" in head_start and "RAY_AUTH_MODE=token" in " ".join(
        cfg["worker_start_ray_commands"]
    )
    assert cfg["available_node_types"]["head"]["resources"]["CPU"] == 0


def test_grafana_dashboard_charts_every_gauge():
    dash = json.loads((DEPLOY / "grafana" / "sonic_ray_dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    charted = [re.match(rf"{PROMETHEUS_PREFIX}(\w+)\{{", e).group(1) for e in exprs]
    assert sorted(charted) == sorted(GAUGES)
    for expr, name in zip(exprs, charted):
        assert 'run=~"$run"' in expr
        assert ('runner="all"' in expr) == (name not in RUNNER_GAUGES)
    assert {v["name"] for v in dash["templating"]["list"]} == {"datasource", "run"}
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
