"""The run record: every figure of one run, as plain values (pure)."""

from .run import OUTCOMES, RunRecord, StageResult, merge_counts

__all__ = ["OUTCOMES", "RunRecord", "StageResult", "merge_counts"]
