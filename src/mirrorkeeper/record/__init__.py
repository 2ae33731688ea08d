"""The run record: every figure of one run, as plain values (pure)."""

from .run import (
    OUTCOMES,
    SIGNAL_STAGE,
    Attempt,
    Deletions,
    DownstreamResult,
    RunRecord,
    StageResult,
    merge_counts,
)

__all__ = ["OUTCOMES", "SIGNAL_STAGE", "Attempt", "Deletions", "DownstreamResult", "RunRecord",
           "StageResult", "merge_counts"]
