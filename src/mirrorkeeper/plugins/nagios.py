"""``mirrorkeeper-alert-nagios --command-file PATH [--host H] [--service S]``: a passive
``PROCESS_SERVICE_CHECK_RESULT`` for the mirror's service, written to Nagios' external command
file (a FIFO). ``%s`` in ``--service`` becomes the mirror name.

The host defaults to the alert's ``host`` (``[global] hostname``), the name ``mirrorkeeper
nagios-config`` defines the services under, so by default both land on the same service."""

from __future__ import annotations

import argparse
import os
import socket
import time

from . import read_alert

STATE = {"info": 0, "warning": 1, "error": 1, "critical": 2}  # DESIGN §4's default routes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--command-file", default="/var/lib/nagios4/rw/nagios.cmd")
    parser.add_argument("--host", default=None,
                        help="Nagios host_name (default: the alert's host, [global] hostname, "
                             "as `mirrorkeeper nagios-config` uses)")
    parser.add_argument("--service", default="mirror %s")
    args = parser.parse_args()
    alert = read_alert()
    state = 0 if alert.get("resolved") else STATE.get(str(alert["severity"]), 3)
    label = "OK" if state == 0 else ("WARNING", "CRITICAL")[state - 1] if state < 3 else "UNKNOWN"
    text = f"MIRRORKEEPER {label} - {alert['code']}: {alert['summary']}"  # one line: read_alert
    service = args.service.replace("%s", str(alert["mirror"]))
    host = args.host or alert.get("host") or socket.getfqdn()
    line = (f"[{int(time.time())}] PROCESS_SERVICE_CHECK_RESULT;{host};{service};"
            f"{state};{text}\n")
    # Non-blocking: if Nagios is not reading the FIFO, fail now instead of hanging.
    fd = os.open(args.command_file, os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


if __name__ == "__main__":
    main()
