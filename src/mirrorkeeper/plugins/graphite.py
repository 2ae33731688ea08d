"""``mirrorkeeper-alert-graphite --url http://graphite/events/``: a Graphite event (HTTP POST
of ``what``, ``tags``, ``data``), so alerts show as annotations on the mirror's graphs."""

from __future__ import annotations

import argparse
import json
import urllib.request

from . import read_alert, subject


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--timeout", type=float, default=10)
    args = parser.parse_args()
    alert = read_alert()
    state = "resolved" if alert.get("resolved") else str(alert["severity"])
    event = {"what": subject(alert),
             "tags": ["mirrorkeeper", str(alert["mirror"]), str(alert["code"]), state],
             "data": json.dumps(alert, sort_keys=True)}
    request = urllib.request.Request(args.url, data=json.dumps(event).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=args.timeout) as response:
        if response.status >= 300:
            raise SystemExit(f"graphite answered {response.status}")


if __name__ == "__main__":
    main()
