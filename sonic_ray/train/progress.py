"""Live training view (rich): iteration, throughput, reward, episode length, losses, phase times.

On a terminal it redraws one table in place; elsewhere (CI, `ray job logs`) it prints one line per
iteration so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

# (metric key, label, format) shown in the view when present.
SHOWN = (
    ("perf/env_steps_per_s", "env-steps/s", "{:,.0f}"),
    ("reward/total", "reward (per step)", "{:.4f}"),
    ("env/episode_length", "episode length", "{:.1f}"),
    ("env/success_rate", "success", "{:.1%}"),
    ("eval/success_rate", "eval success", "{:.1%}"),
    ("eval/success_rate_global", "eval success within 0.5 m", "{:.1%}"),
    ("eval/completed_mean", "eval completed", "{:.3f}"),
    # the same policy with its token zeroed: what it does from proprioception alone (eval_blind)
    ("eval/blind/completed_mean", "eval completed, blind", "{:.3f}"),
    ("eval/mpjpe_l_mm", "eval MPJPE local (mm)", "{:.1f}"),
    ("loss/policy", "loss/policy", "{:.4f}"),
    ("loss/value", "loss/value", "{:.4f}"),
    ("loss/aux_total", "loss/aux", "{:.4f}"),
    ("ppo/approx_kl", "approx KL", "{:.4f}"),
    ("ppo/actor_lr_mean", "actor lr (mean)", "{:.2e}"),
    ("perf/time_sample_s", "time sample (s)", "{:.2f}"),
    ("perf/time_learn_s", "time learn (s)", "{:.2f}"),
    ("perf/time_sync_s", "time sync (s)", "{:.2f}"),
)


class ProgressView:
    def __init__(
        self, *, title: str, max_iterations: int, live: bool | None = None, console: Console | None = None
    ):
        self.console = console or Console(stderr=False)
        self.live_mode = sys.stdout.isatty() if live is None else live
        self.title = title
        self.max_iterations = max_iterations
        self._live: Live | None = None
        self._t0 = time.perf_counter()
        self._eval: dict[str, Any] = {}  # the latest evaluation's figures (one arrives every eval_interval)

    def __enter__(self) -> ProgressView:
        if self.live_mode:
            self._live = Live(self._table(None), console=self.console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)

    def _table(self, metrics: dict[str, Any] | None) -> Table:
        table = Table(title=self.title, show_header=False, min_width=44)
        table.add_column("metric", style="cyan")
        table.add_column("value", justify="right")
        if metrics is None:
            table.add_row("status", "starting")
            return table
        it = metrics.get("iteration", 0)
        elapsed = time.perf_counter() - self._t0
        table.add_row("iteration", f"{it} / {self.max_iterations}")
        table.add_row("elapsed", f"{elapsed:,.0f} s")
        for key, label, fmt in SHOWN:
            v = metrics.get(key)
            if v is not None:
                table.add_row(label, fmt.format(v))
        return table

    def update(self, metrics: dict[str, Any]) -> None:
        if self._live is not None:
            # the live table keeps showing the latest evaluation until the next one arrives
            self._eval.update({k: v for k, v in metrics.items() if k.startswith("eval/")})
            self._live.update(self._table({**self._eval, **metrics}))
            return
        parts = [f"iter {metrics.get('iteration', 0)}/{self.max_iterations}"]
        for key, label, fmt in SHOWN:
            v = metrics.get(key)
            if v is not None:
                parts.append(f"{label}={fmt.format(v)}")
        self.console.print(" | ".join(parts), highlight=False, soft_wrap=True)
