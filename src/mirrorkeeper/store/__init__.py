"""The store (I/O): run history and live progress in SQLite (WAL) via SQLAlchemy Core."""

from .store import Store

__all__ = ["Store"]
