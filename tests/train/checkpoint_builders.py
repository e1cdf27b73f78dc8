"""Checkpoints as an attacker or a careless sender hands them over: a state.pt whose pickle runs code,
with a manifest that matches it."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import torch

from sonic_ray.train.checkpoint import save_checkpoint


class RunsCode:
    """A pickle payload: unpickling it calls exec, which writes `marker` (what an attacker's would do)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('code ran')",)


def forge_checkpoint(root: Path, payload: bytes, iteration: int = 1) -> Path:
    """A checkpoint whose state.pt is `payload`, with a manifest that matches it (whoever hands over a
    checkpoint writes its manifest too)."""
    path = save_checkpoint(root, iteration, {"iteration": iteration})
    (path / "state.pt").write_bytes(payload)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["files"]["state.pt"] = {"sha256": hashlib.sha256(payload).hexdigest(), "bytes": len(payload)}
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path


def torch_saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()
