"""`sonic-ray tune`: Ray Tune over config keys (FSQ levels, encoder probabilities, anything dotted).

Each trial is one `Trainer` (its own run dir under `<run_dir>/trials/<trial id>/`) inside a Tune
function trainable. The trial's placement group is RLlib's own resource request for the trial's
config (the driver with its local learner, one bundle per env runner and per learner), so the
env runners and learners the trial's algorithm creates land in it. ASHA stops weak trials early on
`tune.metric`. After the sweep: `results.csv`, `results.png`, `best.yaml` in the run dir.
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sonic_ray.cluster import init_ray
from sonic_ray.config.compose import ConfigError, compose, to_typed
from sonic_ray.config.schema import SonicConfig
from sonic_ray.train.driver import Trainer, default_run_dir
from sonic_ray.train.metrics import read_metrics
from sonic_ray.tune.results import TrialRow, best_row, plot_results, write_best_yaml, write_results_csv
from sonic_ray.tune.space import Spec, check_space, num_trials, parse_search_space, trial_config

TRIALS_DIR = "trials"
TUNE_STORAGE_DIR = "tune"  # Tune's own experiment state (resumable with Tuner.restore)


def param_space(specs: Sequence[Spec]) -> dict[str, Any]:
    from ray import tune

    make = {
        "grid": lambda s: tune.grid_search(list(s.values)),
        "fsq": lambda s: tune.grid_search(list(s.values)),
        "choice": lambda s: tune.choice(list(s.values)),
        "uniform": lambda s: tune.uniform(*s.bounds),
        "loguniform": lambda s: tune.loguniform(*s.bounds),
        "randint": lambda s: tune.randint(*s.bounds),
    }
    return {s.key: make[s.kind](s) for s in specs}


def trial_resources(cfg: SonicConfig):
    """RLlib's resource request for this config: [driver + local learner] + env runners + learners."""
    # lazy: both import ray, and `sonic-ray --help` imports this module through tune/cli
    from sonic_ray.algorithm import SonicPPO
    from sonic_ray.train.build import algorithm_config

    return SonicPPO.default_resource_request(algorithm_config(cfg))


def _resources_for(params: dict[str, Any], *, base_yaml: str):
    """The placement group of one trial, from that trial's own config (a sweep may vary `ray.*`)."""
    return trial_resources(trial_config(OmegaConf.create(base_yaml), params))


def _report_fn(metric: str):
    from ray import tune

    last = {metric: math.nan}  # ASHA needs the metric in every result: carry the latest value forward

    def report(metrics: dict[str, Any]) -> None:
        if metric in metrics:
            last[metric] = metrics[metric]
        tune.report({**metrics, metric: last[metric]})

    return report


def _trial(params: dict[str, Any], *, base_yaml: str, trials_root: str, metric: str) -> None:
    """One trial: the base config with `params` applied, trained by a Trainer with its own run dir."""
    from ray import tune

    cfg = trial_config(OmegaConf.create(base_yaml), params)
    trainer = Trainer(cfg, run_dir=Path(trials_root) / tune.get_context().get_trial_id())
    try:
        trainer.run(on_iteration=_report_fn(metric))
    finally:
        trainer.close()


def _trial_id(result) -> str:
    """Tune's id of a trial ('a1b2c_00001'): in every reported result, else in its directory name."""
    if result.metrics and result.metrics.get("trial_id"):
        return str(result.metrics["trial_id"])
    match = re.search(r"_([0-9a-f]{5}_\d{5})(_|$)", Path(result.path or "").name)
    return match.group(1) if match else Path(result.path or "unknown").name


def run_sweep(overrides: Sequence[str]) -> Path:
    """Compose, check every grid point, run the sweep on Ray, write the outputs; returns the run dir."""
    base: DictConfig = compose(overrides)
    cfg = to_typed(base)  # fails here, before Ray, on a bad key (incl. the search space's keys and specs)
    t = cfg.tune
    specs = parse_search_space(t.search_space)  # checked in full by to_typed; here only the specs
    if not specs:
        raise ConfigError(
            "tune.search_space is empty: compose a sweep (+exp=tune_smoke, tune=fsq_encoders) "
            "or add keys (+tune.search_space.algo.actor_lr={loguniform:[1e-5,1e-3]})"
        )
    check_space(base, specs)
    run_dir = Path(cfg.run_dir or default_run_dir(cfg, prefix="tune-")).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    trial_base = OmegaConf.create(OmegaConf.to_container(base))
    trial_base.run_dir = None
    trial_base.resume = None
    grid_first = {s.key: s.values[0] for s in specs if s.is_grid or s.kind == "choice"}
    first = trial_resources(trial_config(trial_base, grid_first))
    print(
        f"sonic-ray tune: {num_trials(specs, t.num_samples)} "
        f"trial(s){'' if all(s.is_grid for s in specs) else ' (some keys drawn)'}"
        f", {t.max_concurrent_trials} at a time, the first with bundles {first.bundles}; run dir {run_dir}"
    )

    rows = _fit(cfg, specs, OmegaConf.to_yaml(trial_base), run_dir)
    keys = [s.key for s in specs]
    write_results_csv(run_dir / "results.csv", rows, keys, t.metric)
    plot_results(run_dir / "results.png", rows, t.metric, t.mode)
    best = best_row(rows, t.metric, t.mode)
    if best is None:
        print(f"sonic-ray tune: no trial reported a finite {t.metric}; no best.yaml written")
        return run_dir
    best_cfg = to_typed(OmegaConf.load(Path(best.run_dir) / "config.yaml"))
    name = f"{cfg.experiment}_best"
    header = (
        f"Best trial {best.trial_id} of the sweep in {run_dir}: {t.metric} = {best.metrics[t.metric]:.6g} "
        f"({t.mode}) after {best.iterations} iterations.\nUse it: cp best.yaml configs/exp/{name}.yaml && "
        f"sonic-ray train +exp={name}"
    )
    write_best_yaml(
        run_dir / "best.yaml",
        overrides=overrides,
        trial_cfg=best_cfg,
        params=best.params,
        experiment=name,
        header=header,
    )
    return run_dir


def _fit(cfg: SonicConfig, specs: Sequence[Spec], base_yaml: str, run_dir: Path) -> list[TrialRow]:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    t = cfg.tune
    # Trials keep the driver's working directory (relative motion paths, configs/ resolve as in `train`).
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    init_ray(cfg)
    scheduler = (
        ASHAScheduler(
            time_attr="training_iteration",
            max_t=cfg.algo.max_iterations,
            grace_period=t.grace_period,
            reduction_factor=t.reduction_factor,
        )
        if t.scheduler == "asha"
        else FIFOScheduler()
    )
    search_alg = None
    if t.seed is not None and any(not s.is_grid for s in specs):
        from ray.tune.search.basic_variant import BasicVariantGenerator

        search_alg = BasicVariantGenerator(random_state=t.seed, max_concurrent=t.max_concurrent_trials)
    trainable = tune.with_resources(
        tune.with_parameters(
            _trial, base_yaml=base_yaml, trials_root=str(run_dir / TRIALS_DIR), metric=t.metric
        ),
        functools.partial(_resources_for, base_yaml=base_yaml),
    )
    tuner = tune.Tuner(
        trainable,
        param_space=param_space(specs),
        tune_config=tune.TuneConfig(
            metric=t.metric,
            mode=t.mode,
            scheduler=scheduler,
            search_alg=search_alg,
            num_samples=t.num_samples,
            # a seeded generator limits concurrency itself (Tune ignores this then)
            max_concurrent_trials=None if search_alg else t.max_concurrent_trials,
        ),
        run_config=tune.RunConfig(
            name="sweep",
            storage_path=str(run_dir / TUNE_STORAGE_DIR),
            verbose=1,
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    )
    grid = tuner.fit()
    rows = []
    for result in grid:
        trial_id = _trial_id(result)
        trial_dir = run_dir / TRIALS_DIR / trial_id
        history = read_metrics(trial_dir / "metrics.jsonl") if (trial_dir / "metrics.jsonl").is_file() else []
        metrics = dict(history[-1]) if history else {}
        iterations = int(metrics.get("iteration", 0))
        status = (
            "error"
            if result.error
            else "completed"
            if iterations >= cfg.algo.max_iterations
            else "stopped early"
        )
        if result.metrics and t.metric in result.metrics:
            metrics[t.metric] = result.metrics[t.metric]  # carried forward when the last row lacked it
        params = {s.key: (result.config or {}).get(s.key) for s in specs}
        error = str(result.error).strip().splitlines()[0][:300] if result.error else ""
        rows.append(
            TrialRow(
                trial_id=trial_id,
                status=status,
                params=params,
                iterations=iterations,
                metrics=metrics,
                run_dir=str(trial_dir),
                history=history,
                error=error,
            )
        )
    return sorted(rows, key=lambda r: r.trial_id)
