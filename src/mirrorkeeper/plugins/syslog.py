"""``mirrorkeeper-alert-syslog [--socket /dev/log] [--facility daemon]``: one syslog message
(RFC 3164 over a UNIX datagram socket), priority from the severity."""

from __future__ import annotations

import argparse
import os
import socket
import time

from . import read_alert, subject

PRIORITY = {"critical": 2, "error": 3, "warning": 4, "info": 6}  # crit, err, warning, info
FACILITY = {"daemon": 3, "user": 1, "local0": 16, "local1": 17, "local2": 18, "local3": 19,
            "local4": 20, "local5": 21, "local6": 22, "local7": 23}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--socket", default="/dev/log")
    parser.add_argument("--facility", default="daemon", choices=sorted(FACILITY))
    parser.add_argument("--tag", default="mirrorkeeper")
    args = parser.parse_args()
    alert = read_alert()
    severity = 6 if alert.get("resolved") else PRIORITY.get(str(alert["severity"]), 3)
    pri = FACILITY[args.facility] * 8 + severity
    stamp = time.strftime("%b %d %H:%M:%S", time.localtime())
    message = f"<{pri}>{stamp} {args.tag}[{os.getpid()}]: {subject(alert)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(args.socket)
        sock.send(message.encode()[:8000])


if __name__ == "__main__":
    main()
