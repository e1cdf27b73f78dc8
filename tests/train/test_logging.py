import io
from pathlib import Path

from rich.console import Console

from sonic_ray.train.progress import ProgressView
from sonic_ray.train.wandb_log import RUN_ID_FILE, WandbLogger


def test_progress_view_prints_one_line_per_update_without_tty():
    buf = io.StringIO()
    with ProgressView(title="t", max_iterations=3, live=False, console=Console(file=buf, width=300)) as view:
        view.update({"iteration": 1, "perf/env_steps_per_s": 1234.5, "env/episode_length": 12.25})
    out = buf.getvalue()
    assert "iter 1/3" in out and "env-steps/s=1,234" in out and "episode length=12.2" in out


def test_progress_view_shows_the_blind_control_beside_the_evaluation():
    buf = io.StringIO()
    with ProgressView(title="t", max_iterations=3, live=False, console=Console(file=buf, width=400)) as view:
        view.update({"iteration": 2, "eval/completed_mean": 0.7, "eval/blind/completed_mean": 0.6641})
    out = buf.getvalue()
    assert "eval completed=0.700" in out and "eval completed, blind=0.664" in out


def test_progress_view_live_table_renders():
    buf = io.StringIO()
    with ProgressView(
        title="demo", max_iterations=2, live=True, console=Console(file=buf, width=120, force_terminal=True)
    ) as v:
        v.update({"iteration": 2, "loss/policy": 0.5})
    assert "loss/policy" in buf.getvalue()


def test_live_table_keeps_the_latest_evaluation_between_evaluations():
    buf = io.StringIO()
    console = Console(file=buf, width=120, force_terminal=True)
    shown = []
    with ProgressView(title="demo", max_iterations=3, live=True, console=console) as v:
        put = v._live.update
        v._live.update = lambda table, **kw: (shown.append(table), put(table, **kw))
        v.update({"iteration": 1, "eval/completed_mean": 0.7})
        v.update({"iteration": 2, "loss/policy": 0.5})
    table = shown[-1]  # what the second update put on screen
    rows = dict(zip(table.columns[0]._cells, table.columns[1]._cells))
    assert rows["eval completed"] == "0.700"


def test_wandb_offline_run_writes_files_and_resumes_same_id(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    lg = WandbLogger(run_dir=tmp_path, mode="online", project="p", entity=None, name="n", config={"a": 1})
    assert lg.mode == "offline"  # no key: never tries the network
    lg.log({"reward/total": 1.5, "skip": None}, step=0)
    run_id = lg.run_id
    lg.finish()
    assert (tmp_path / RUN_ID_FILE).read_text() == run_id
    assert list(Path(tmp_path, "wandb").glob(f"offline-run-*-{run_id}"))
    lg2 = WandbLogger(run_dir=tmp_path, mode="offline", project="p", entity=None, name="n", config={})
    assert lg2.run_id == run_id
    lg2.finish()
