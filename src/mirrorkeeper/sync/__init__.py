"""Running a sync (I/O): the lock, the per-run log, rsync stages, live progress, the record."""
