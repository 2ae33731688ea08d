"""``mirrorkeeper-alert-email --to ADDR [--from ADDR] [--smtp HOST:PORT] [--starttls|--ssl]
[--user U --password-file F]``: one e-mail per alert."""

from __future__ import annotations

import argparse
import json
import smtplib
import ssl
from email.message import EmailMessage
from pathlib import Path

from . import read_alert, subject


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--to", action="append", required=True)
    parser.add_argument("--from", dest="sender", default="mirrorkeeper@localhost")
    parser.add_argument("--smtp", default="localhost:25")
    security = parser.add_mutually_exclusive_group()
    security.add_argument("--starttls", action="store_true")
    security.add_argument("--ssl", action="store_true")
    parser.add_argument("--user")
    parser.add_argument("--password-file")
    parser.add_argument("--timeout", type=float, default=20)
    args = parser.parse_args()
    alert = read_alert()
    msg = EmailMessage()
    msg["Subject"] = subject(alert)
    msg["From"] = args.sender
    msg["To"] = ", ".join(args.to)
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Mirrorkeeper-Code"] = str(alert["code"])
    body = [subject(alert), "", f"host: {alert.get('host')}", f"mirror: {alert['mirror']}",
            f"severity: {alert['severity']}", f"code: {alert['code']}",
            f"upstreams tried: {', '.join(alert.get('upstreams_tried') or []) or '-'}",
            f"first seen: {alert.get('first_seen')}", f"last seen: {alert.get('last_seen')}",
            f"run: {alert.get('run_id')}", "", "details:",
            json.dumps(alert.get("details") or {}, indent=2, sort_keys=True)]
    if alert.get("digest"):
        body = [subject(alert), ""]
        for item in alert["alerts"]:
            state = "RESOLVED" if item.get("resolved") else str(item["severity"]).upper()
            body.append(f"- {state} {item['mirror']} {item['code']}: {item['summary']} "
                        f"(last seen {item.get('last_seen')})")
    msg.set_content("\n".join(body) + "\n")
    host, _, port = args.smtp.rpartition(":")
    context = ssl.create_default_context()
    host = host or args.smtp
    smtp: smtplib.SMTP
    if args.ssl:
        smtp = smtplib.SMTP_SSL(host, int(port or 465), timeout=args.timeout, context=context)
    else:
        smtp = smtplib.SMTP(host, int(port or 25), timeout=args.timeout)
    with smtp:
        if args.starttls:
            smtp.starttls(context=context)
        if args.user:
            password = Path(args.password_file).read_text().strip() if args.password_file else ""
            smtp.login(args.user, password)
        smtp.send_message(msg)


if __name__ == "__main__":
    main()
