"""``mirrorkeeper daemon``: schedules, update detection, push triggers, the dashboard."""
