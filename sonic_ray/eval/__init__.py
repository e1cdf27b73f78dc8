"""Evaluation: per-clip tracking metrics, the Ray-free evaluation runner, videos, reports, and the
Ray shell that fans evaluations out (`tasks`) and watches a run's checkpoints (`monitor`)."""
