"""The USD the isaaclab backend loads: the robot's own MJCF converted with mujoco-usd-converter, and
a local floor, cached by a hash of what was converted (nothing is downloaded)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import mujoco

INSTALL_HINT = (
    "the isaaclab backend needs Isaac Lab 3.0 on Python 3.12 (isaaclab==3.0.0, "
    "mujoco-usd-converter==0.6.1, mujoco==3.12.0): run `make isaaclab-setup` and use .venv-isaaclab"
)
_CONVERTER_TAG = (
    "mujoco-usd-converter-0.6/strip-v1"  # part of the cache key: bump when the USD recipe changes
)
# Friction ~0 (just above MuJoCo Warp's minimum, 1e-5): MuJoCo (Warp) takes a contact's friction as
# the max of its two geoms' unless a geom has priority, and priority does not survive the USD
# conversion; with a frictionless floor every contact gets the robot geom's own friction (the sole's
# 0.6), as the MuJoCo model's sole priority does.
GROUND_MJCF = (
    '<mujoco model="ground"><worldbody><geom name="floor" type="plane" size="0 0 0.05" condim="3" '
    'friction="2e-5 0 0"/></worldbody></mujoco>'
)


def default_cache_dir() -> Path:
    return Path(os.environ.get("SONIC_RAY_CACHE", Path.home() / ".cache" / "sonic-ray")) / "isaaclab-usd"


def robot_only_mjcf(mjcf: str) -> str:
    """The MJCF without what Isaac Lab provides itself or must not get twice: world geoms (the
    floor), lights, cameras, sites, keyframes and actuators (the articulation's actuator config
    drives the joints; converted MuJoCo actuators would hold ctrl 0)."""
    spec = mujoco.MjSpec.from_string(mjcf)
    for g in list(spec.worldbody.geoms):
        spec.delete(g)
    for seq in (spec.lights, spec.cameras, spec.sites, spec.keys, spec.actuators):
        for item in list(seq):
            spec.delete(item)
    return spec.to_xml()


def cached_usd(mjcf: str, cache_dir: str | os.PathLike | None = None, *, converter=None) -> Path:
    """Path of the USD converted from `mjcf`, converting once per distinct MJCF (atomic rename, so
    concurrent runners never read half a file)."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = hashlib.sha256(f"{_CONVERTER_TAG}\n{mjcf}".encode()).hexdigest()[:16]
    out = root / key
    if not (out / "model.usdc").is_file():
        if converter is None:
            try:
                import mujoco_usd_converter as converter
            except ImportError as err:
                raise ImportError(f"{INSTALL_HINT} ({err})") from err
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=root) as tmp:
            src = Path(tmp) / "model.xml"
            src.write_text(mjcf)
            usd = Path(
                converter.Converter(layer_structure=False, scene=False).convert(str(src), f"{tmp}/usd").path
            )
            usd.rename(Path(tmp) / "model.usdc")
            src.rename(Path(tmp) / "source.xml")
            (Path(tmp) / "usd").rmdir()
            try:
                os.rename(tmp, out)
                os.mkdir(tmp)  # TemporaryDirectory removes it on exit
            except OSError:  # another process converted it meanwhile
                pass
    return out / "model.usdc"
