"""`sonic-ray tune +exp=tune_smoke` on a real local Ray (2 CPUs): trials build different quantizers."""

import math
import shutil

import pytest
from omegaconf import OmegaConf

from sonic_ray.cli import main
from sonic_ray.config import config_dir, load_config, to_yaml
from sonic_ray.config.compose import to_typed
from sonic_ray.train.metrics import read_metrics
from sonic_ray.tune.results import read_results_csv
from sonic_ray.tune.space import LEVELS_KEY

pytestmark = [pytest.mark.slow, pytest.mark.ray]


@pytest.fixture
def ray_2cpus():
    import ray

    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONWARNINGS": "ignore"}},
    )
    yield
    ray.shutdown()


def test_tune_smoke_trials_build_different_fsq_quantizers(ray_2cpus, tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "sweep"
    assert main(["tune", "+exp=tune_smoke", f"run_dir={run_dir}"]) == 0
    assert f"best: {run_dir / 'best.yaml'}" in capsys.readouterr().out

    rows = read_results_csv(run_dir / "results.csv")
    num_tokens = load_config(["+exp=tune_smoke"]).actor_critic.quantizer.num_tokens
    assert len(rows) == 2 and {r["status"] for r in rows} <= {"completed", "stopped early"}
    levels = sorted(r[LEVELS_KEY] for r in rows)
    assert levels == ["[5, 5, 5]", "[8, 8]"]
    for row in rows:
        # The codebook size the learner reports is the built quantizer's, per trial.
        history = read_metrics(f"{row['run_dir']}/metrics.jsonl")
        lv = [int(x) for x in row[LEVELS_KEY].strip("[]").split(",")]
        assert {h["model/codebook_size"] for h in history} == {float(math.prod(lv))}
        # token_dim: the levels' dims per token, times the preset's tokens (the demo's release FSQ: 2)
        assert float(row["model/codebook_size"]) == math.prod(lv)
        assert float(row["model/token_dim"]) == len(lv) * num_tokens
        assert int(row["iterations"]) == len(history) >= 2
        assert math.isfinite(float(row["reward/total"]))
        assert row["env.commands.motion.encoder_sample_probs.smpl"] in ("0.5", "1.0")
    assert (run_dir / "results.png").stat().st_size > 0

    # best.yaml is an experiment preset that composes to the best trial's config.
    longest = max(int(r["iterations"]) for r in rows)  # ASHA-stopped trials cannot win
    best = max((r for r in rows if int(r["iterations"]) == longest), key=lambda r: float(r["reward/total"]))
    assert f"Best trial {best['trial_id']} " in (run_dir / "best.yaml").read_text()
    configs = tmp_path / "configs"
    shutil.copytree(config_dir(), configs)
    shutil.copy(run_dir / "best.yaml", configs / "exp" / "tune_smoke_best.yaml")
    monkeypatch.setenv("SONIC_RAY_CONFIG_DIR", str(configs))
    composed = load_config(["+exp=tune_smoke_best"])
    trial = to_typed(OmegaConf.load(f"{best['run_dir']}/config.yaml"))
    assert composed.experiment == "tune_smoke_best"
    assert composed.actor_critic.quantizer.levels == trial.actor_critic.quantizer.levels
    composed.experiment, composed.run_dir = trial.experiment, trial.run_dir
    assert to_yaml(composed) == to_yaml(trial)
