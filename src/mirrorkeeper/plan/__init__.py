"""Planning a run (pure): which stages, with which rsync argv, under which bounds."""

from .argv import COMMON_OPTIONS, StagePlan, SyncPlan, build_plan, max_delete_bound

__all__ = ["COMMON_OPTIONS", "StagePlan", "SyncPlan", "build_plan", "max_delete_bound"]
