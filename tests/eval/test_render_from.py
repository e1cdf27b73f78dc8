"""`sonic-ray eval --render-from`: the K worst clips of an earlier evaluation rendered without
evaluating every clip again; report.html gives the viewer command for any clip."""

import json

import pytest
from eval_builders import small_checkpoint, small_config, small_store

from sonic_ray.cli import main
from sonic_ray.eval.report import render_report
from sonic_ray.eval.runner import worst_first_key


def _rows():
    return [
        {
            "clip": "walk </script>",
            "encoder": "g1",
            "success": False,
            "completed": 0.5,
            "mpjpe_g_mm": 80.0,
            "mpjpe_l_mm": 40.0,
        },
        {
            "clip": "it's",
            "encoder": "g1",
            "success": True,
            "completed": 1.0,
            "mpjpe_g_mm": 20.0,
            "mpjpe_l_mm": 10.0,
        },
    ]


def test_report_gives_the_viewer_command_for_every_clip():
    page = render_report(
        {"num_clips": 2},
        _rows(),
        {},
        title="t",
        view_command="sonic-ray view policy --checkpoint /r/ckpt --motions s.parquet --clip {clip}",
    )
    assert "Open a clip in the viewer" in page and page.count("</script>") == 1
    script = page[page.index("const VIEW = ") + 13 : page.index(";\nfunction showView")]
    cmds = json.loads(script)
    assert (
        cmds["it's"] == "sonic-ray view policy --checkpoint /r/ckpt --motions s.parquet --clip 'it'\"'\"'s'"
    )
    assert set(cmds) == {"walk </script>", "it's"} and page.count(">view</a>") == 2
    assert "Open a clip in the viewer" not in render_report({}, _rows(), {}, title="t")


def test_render_from_input_errors(tmp_path, capsys):
    assert main(["eval", "--render-from", str(tmp_path / "clips.parquet"), "--render", "2"]) == 1
    assert "clips.parquet: not found" in capsys.readouterr().err
    assert main(["eval", "--render-from", str(tmp_path / "clips.parquet")]) == 2
    assert "--render-from needs --render K" in capsys.readouterr().err
    assert main(["eval"]) == 2


@pytest.mark.slow
def test_render_from_renders_the_worst_clips_of_an_earlier_evaluation(tmp_path, capsys):
    import pyarrow.parquet as pq

    store = small_store(tmp_path)
    ckpt = small_checkpoint(tmp_path / "run", small_config(store))
    out = tmp_path / "eval"
    assert (
        main(
            [
                "eval",
                "--checkpoint",
                str(ckpt),
                "--out",
                str(out),
                "--render",
                "0",
                "--max-tasks",
                "1",
                "--no-progress",
                f"motions.store={store}",
            ]
        )
        == 0
    )
    before = {f: (out / f).read_bytes() for f in ("clips.parquet", "metrics.json")}
    assert not (out / "videos").exists()
    assert json.loads(before["metrics.json"])["overrides"] == [f"motions.store={store}"]
    capsys.readouterr()

    assert main(["eval", "--render-from", str(out / "clips.parquet"), "--render", "2"]) == 0
    printed = capsys.readouterr()
    assert "ran differently" not in printed.out + printed.err  # evaluation is deterministic
    rows = [r for r in pq.read_table(out / "clips.parquet").to_pylist() if r["encoder"] != "blind"]
    worst = sorted(rows, key=worst_first_key)[:2]  # the blind control's rows are never rendered
    videos = sorted(p.name for p in (out / "videos").glob("*.mp4"))
    assert videos == sorted(f"{r['clip']}.mp4" for r in worst)
    assert all((out / "videos" / v).stat().st_size > 1000 for v in videos)
    page = (out / "report.html").read_text()
    assert all(f"videos/{v}" in page for v in videos) and "Open a clip in the viewer" in page
    assert f"sonic-ray view policy --checkpoint {ckpt}" in page
    assert {
        f: (out / f).read_bytes() for f in before
    } == before  # the evaluation's tables are left as they were
