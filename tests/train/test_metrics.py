import json

from sonic_ray.train.metrics import MetricsLog, plot_learning_curves, read_metrics


def test_metrics_log_and_plot(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    for i in range(5):
        log.write(
            {"iteration": i, "env/episode_length": 10.0 + i, "reward/total": float("nan") if i == 0 else i}
        )
    log.close()
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"iteration": 5, "env/ep')  # torn last line from a crash
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["iteration"] for r in rows] == [0, 1, 2, 3, 4]
    assert rows[0]["reward/total"] is None and rows[4]["env/episode_length"] == 14.0
    png = plot_learning_curves(rows, tmp_path / "curves.png", title="t")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[1])["reward/total"] == 1


def test_plot_with_no_known_curves_draws_nothing(tmp_path):
    assert plot_learning_curves([{"iteration": 0, "x": 1}], tmp_path / "c.png") is None
    assert not (tmp_path / "c.png").exists()


def test_eval_panels_draw_the_blind_control_beside_the_policy(tmp_path, monkeypatch):
    import sonic_ray.train.metrics as m

    figs = []
    monkeypatch.setattr(m, "save_figure_png", lambda fig, path: figs.append(fig) or path)
    rows = [
        {"iteration": 50, "eval/completed_mean": 0.4, "eval/blind/completed_mean": 0.38},
        {"iteration": 100, "eval/completed_mean": 0.6, "eval/blind/completed_mean": 0.41},
    ]
    m.plot_learning_curves(rows, tmp_path / "c.png")
    (ax,) = [a for a in figs[0].axes if a.get_title() == "eval/completed_mean"]
    lines = {ln.get_label(): list(ln.get_ydata()) for ln in ax.get_lines()}
    assert lines == {"eval/completed_mean": [0.4, 0.6], "blind control (token zeroed)": [0.38, 0.41]}
