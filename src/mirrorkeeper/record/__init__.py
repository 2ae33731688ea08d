"""The run record: every figure of one run, as plain values (pure)."""

from .run import OUTCOMES, Attempt, RunRecord, StageResult, merge_counts

__all__ = ["OUTCOMES", "Attempt", "RunRecord", "StageResult", "merge_counts"]
