"""Mirrorkeeper keeps rsync mirrors in sync and says when a human must help.

The data flow gives the package layout::

    config → plan → rsync (process + parse) → record → store
                                             └→ live progress

``plan``, ``rsync.parse``, ``rsync.lines`` and ``record`` are pure: they take and return plain
values and never touch the disk, the network or the clock. Everything that does I/O lives in
``rsync.process``, ``store``, ``sync``, ``logs`` and ``cli``.
"""

__version__ = "0.1.0"
