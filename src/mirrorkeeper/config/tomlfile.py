"""Reading one TOML file (I/O): every way it can fail is a :class:`Problem`, never a traceback.

The config file and every profile file come through here, so a binary file, a file in another
encoding, a directory or a file nobody may read is reported with its path and what is wrong.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from .problems import Problem


def _not_utf8(path: Path, data: bytes, exc: UnicodeDecodeError) -> Problem:
    line = data.count(b"\n", 0, exc.start) + 1
    return Problem(str(path), "", f"is not UTF-8 text: byte 0x{data[exc.start]:02x} on line "
                   f"{line} cannot be decoded", "TOML files are UTF-8; is this the right file?")


def read_toml_file(path: Path, missing_hint: str = "",
                   ) -> tuple[dict[str, Any] | None, Problem | None]:
    """The parsed file, or None and what is wrong with it."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, Problem(str(path), "", "no such file", missing_hint)
    except OSError as exc:
        return None, Problem(str(path), "", f"cannot be read: {exc.strerror or exc}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, _not_utf8(path, data, exc)
    try:
        return tomllib.loads(text), None
    except tomllib.TOMLDecodeError as exc:
        return None, Problem(str(path), "", f"not valid TOML: {exc}")
    except RecursionError:
        return None, Problem(str(path), "", "not valid TOML: arrays or tables nest too deeply")
