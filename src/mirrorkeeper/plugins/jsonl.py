"""``mirrorkeeper-alert-jsonl FILE``: append the alert as one JSON line (for logstash)."""

from __future__ import annotations

import argparse
import json
import os

from . import read_alert


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("file")
    args = parser.parse_args()
    line = json.dumps(read_alert(), sort_keys=True) + "\n"
    fd = os.open(args.file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, line.encode())  # one write: lines from parallel runs never interleave
    finally:
        os.close(fd)


if __name__ == "__main__":
    main()
