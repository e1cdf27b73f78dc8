"""ONNX export: files, ONNX Runtime vs the ActorCritic's own paths, FSQ as Round, metadata round
trip, atomic writes, and a failing check that fails the command."""

import json

import numpy as np
import onnx
import pytest
import torch
from deploy_builders import config, deployment_metadata, short_store, write_checkpoint

from sonic_ray.cli import main
from sonic_ray.deploy.export import ExportMismatch, compare, export_checkpoint, export_specs, load_for_export
from sonic_ray.deploy.onnx_meta import FORMAT, MetadataError, ort_session, read_metadata
from sonic_ray.models import keys as K
from sonic_ray.robots import G1

pytestmark = pytest.mark.slow  # one real env probe + seven exports per module (~5 s)
FILES = [
    "policy_g1.onnx",
    "policy_teleop.onnx",
    "policy_smpl.onnx",
    "encoder_g1.onnx",
    "encoder_teleop.onnx",
    "encoder_smpl.onnx",
    "decoder_g1_dyn.onnx",
]


@pytest.fixture(scope="module", params=["plain", "obs_normalization"])
def exported(tmp_path_factory, request):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("export")
    extra = ["actor_critic.obs_normalization=true"] if request.param == "obs_normalization" else []
    cfg = config(short_store(root / "short.parquet"), *extra)
    ckpt, ac = write_checkpoint(root / "ckpt", cfg)
    report = export_checkpoint(ckpt, root / "onnx")
    return cfg, ckpt, ac.eval(), report, root / "onnx"


def test_files_and_reported_differences(exported):
    *_, report, out = exported
    assert sorted(p.name for p in out.iterdir()) == sorted([*FILES, "export.json"])
    manifest = json.loads((out / "export.json").read_text())
    assert [f["file"] for f in manifest["files"]] == FILES
    for f in manifest["files"]:
        assert 0.0 <= f["max_abs_diff"] <= 1e-5
        assert read_metadata(out / f["file"])["check"]["max_abs_diff"] == f["max_abs_diff"]
    assert report.max_abs_diff <= 1e-5
    print("max |onnx - torch| per file:", {f["file"]: f"{f['max_abs_diff']:.2e}" for f in manifest["files"]})


def test_onnx_equals_the_actor_critic_on_every_encoder_path(exported):
    """Against ActorCritic.act_inference (routed rows), the encoders, FSQ and action_mean: the
    model paths training uses, not the export wrappers."""
    *_, ac, _, out = exported
    g = torch.Generator().manual_seed(1)
    n = 48
    obs = {
        k: torch.randn(n, int(ac.token.encoders[e][0].in_features), generator=g)
        for e, k in K.TOKENIZER_KEYS.items()
    }
    obs[K.POLICY] = torch.randn(n, ac.token.dyn_decoder[0].in_features - ac.token.latent_dim, generator=g)
    worst = 0.0
    for idx, enc in enumerate(K.ENCODER_NAMES):
        key = K.TOKENIZER_KEYS[enc]
        with torch.no_grad():
            routed = dict(obs, **{K.ENCODER_INDEX: torch.full((n,), idx, dtype=torch.long)})
            want_action = ac.act_inference(routed).numpy()
            latent = ac.token.encoders[enc](ac.normalize_actor_obs(obs)[key])
            token = ac.token.fsq(latent)
        u = ac.token.fsq.level_coordinate(latent)
        keep = ~((u - u.floor() - 0.5).abs() < 1e-4).any(-1).numpy()
        action = ort_session(out / f"policy_{enc}.onnx").run(
            None, {key: obs[key].numpy(), K.POLICY: obs[K.POLICY].numpy()}
        )[0]
        lat_o, tok_o = ort_session(out / f"encoder_{enc}.onnx").run(None, {key: obs[key].numpy()})
        diffs = [
            np.abs(action - want_action)[keep].max(),
            np.abs(lat_o - latent.numpy()).max(),
            np.abs(tok_o - token.numpy())[keep].max(),
        ]
        assert max(diffs) <= 1e-5, (enc, diffs)
        worst = max(worst, *diffs)
    token = torch.from_numpy(tok_o)
    with torch.no_grad():
        want = ac.token.action_mean(token, ac.normalize_actor_obs(obs)[K.POLICY]).numpy()
    got = ort_session(out / "decoder_g1_dyn.onnx").run(
        None, {"token": tok_o, K.POLICY: obs[K.POLICY].numpy()}
    )[0]
    assert np.abs(got - want).max() <= 1e-5
    assert np.abs(want_action).max() > 0.05  # the comparison is about real actions, not zeros


def test_fsq_exports_as_plain_forward_math_with_round(exported):
    *_, ac, _, out = exported
    for name in ("encoder_g1.onnx", "policy_smpl.onnx"):
        ops = {node.op_type for node in onnx.load(str(out / name)).graph.node}
        assert "Round" in ops and "Tanh" in ops  # FSQ's tanh bound (actor_critic.quantizer.bound)
        assert ops <= {
            "Tanh",
            "Gemm",
            "Sigmoid",
            "Mul",
            "Add",
            "Sub",
            "Div",
            "Clip",
            "Min",
            "Round",
            "Concat",
            "Constant",
        }, ops
    tokens = ort_session(out / "encoder_teleop.onnx").run(
        None,
        {
            "tokenizer_teleop": np.random.default_rng(0)
            .normal(size=(16, ac.token.encoders["teleop"][0].in_features))
            .astype(np.float32)
            * 3
        },
    )[1]
    half = ac.token.fsq._half
    k = (torch.from_numpy(tokens) * half).round()  # the integer code of each value
    assert (k.abs() <= half).all()
    np.testing.assert_array_equal(tokens, (k / half).numpy())  # codes, bit for bit


def test_metadata_round_trip_matches_robot_and_config(exported):
    cfg, ckpt, _, _, out = exported
    expected = deployment_metadata(cfg)
    for name in FILES:
        meta = read_metadata(out / name)
        assert meta["format"] == FORMAT
        assert meta["joint_names"] == list(G1.joint_names)
        for key, arr in (
            ("kp", G1.kp),
            ("kd", G1.kd),
            ("default_joint_pos", G1.default_joint_pos),
            ("action_scale", G1.action_scale),
            ("effort_limit", G1.effort_limit),
        ):
            np.testing.assert_array_equal(meta[key], arr, err_msg=key)
        assert meta["control_hz"] == pytest.approx(50.0) and meta["physics_dt"] == cfg.sim.timestep
        assert meta["decimation"] == cfg.sim.decimation
        assert meta["command"] == expected["command"]
        assert meta["source"]["checkpoint"] == str(ckpt) and meta["source"]["iteration"] == 7
        graph = onnx.load(str(out / name)).graph
        assert [i.name for i in graph.input] == [i["name"] for i in meta["inputs"]]
        for inp, spec in zip(graph.input, meta["inputs"]):
            assert inp.type.tensor_type.shape.dim[1].dim_value == spec["shape"][1]
            group = spec["holds"].split("'")[1] if "group" in spec["holds"] else None
            if group:
                assert meta["observations"][group] == expected["all_layouts"][group]
                assert meta["observations"][group]["dim"] == spec["shape"][1]
        assert set(meta["observations"]) == {i["name"] for i in meta["inputs"] if i["name"] != "token"}
    policy = read_metadata(out / "policy_g1.onnx")["observations"]["policy"]
    assert [t["name"] for t in policy["terms"]] == list(cfg.env.observations.policy.terms)
    assert policy["history_length"] == cfg.env.observations.policy.history_length


def test_export_rewrites_atomically_and_leaves_no_temp_files(exported, tmp_path):
    ckpt = exported[1]
    (tmp_path / "policy_g1.onnx").write_bytes(b"stale")
    export_checkpoint(ckpt, tmp_path, batch=8)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert read_metadata(tmp_path / "policy_g1.onnx")["kind"] == "policy"


def test_a_mismatch_is_caught_with_the_file_and_output_named(exported):
    cfg, _, ac, *_ = exported
    spec = export_specs(
        ac,
        {
            "tokenizer_g1": ac.token.encoders["g1"][0].in_features,
            "tokenizer_teleop": ac.token.encoders["teleop"][0].in_features,
            "tokenizer_smpl": ac.token.encoders["smpl"][0].in_features,
            "policy": ac.token.dyn_decoder[0].in_features - ac.token.latent_dim,
        },
    )[-1]
    from sonic_ray.deploy.export import random_inputs, to_onnx

    raw = to_onnx(spec)
    feed, skip = random_inputs(spec, ac, batch=8, seed=0)
    with torch.no_grad():
        spec.graph.decoder[-1].bias.add_(1e-3)  # torch now differs from the exported graph
    try:
        with pytest.raises(
            ExportMismatch, match=r"decoder_g1_dyn.onnx: output 'action' differs .* > tolerance 1e-05"
        ):
            compare(spec, raw, feed, skip, tol=1e-5)
    finally:
        with torch.no_grad():
            spec.graph.decoder[-1].bias.sub_(1e-3)


def test_cli_prints_the_difference_and_fails_on_nan_weights(exported, tmp_path, capsys):
    cfg, ckpt, *_ = exported
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "ok"), "--batch", "8"]) == 0
    assert "max |onnx - torch| over all files:" in capsys.readouterr().out
    bad, _ = write_checkpoint(tmp_path / "bad", cfg, action_gain=float("nan"))
    assert main(["export", "--checkpoint", str(bad), "--out", str(tmp_path / "bad_out")]) == 1
    err = capsys.readouterr().err
    assert "FAILED" in err and "NaN/inf" in err and "token.dyn_decoder.4.weight" in err
    assert not (tmp_path / "bad_out").exists()


def test_the_checkpoint_loads_back_as_the_saved_model(exported):
    _, ckpt, ac, *_ = exported
    cfg2, ac2, info = load_for_export(ckpt)
    for k, v in ac.state_dict().items():
        torch.testing.assert_close(ac2.state_dict()[k], v, msg=k)
    assert info["iteration"] == 7 and cfg2.experiment == "smoke"


def test_read_metadata_rejects_a_foreign_onnx_file(exported, tmp_path):
    *_, out = exported
    model = onnx.load(str(out / "decoder_g1_dyn.onnx"))
    del model.metadata_props[:]
    onnx.save(model, str(tmp_path / "plain.onnx"))
    with pytest.raises(MetadataError, match="plain.onnx: metadata format None"):
        read_metadata(tmp_path / "plain.onnx")
    with pytest.raises(MetadataError, match="no such ONNX file"):
        read_metadata(tmp_path / "missing.onnx")
