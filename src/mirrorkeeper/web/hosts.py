"""Which names the web answers to, and whether it listens beyond this machine (pure).

Kept apart from the middleware so that ``config check`` can use it without importing Starlette.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from ..config.spec import WebSettings

#: Names every daemon answers to, whatever the config says.
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_HOSTNAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*$")


def _normal(name: str) -> str:
    return name.strip().strip("[]").rstrip(".").lower()


def valid_host_entry(name: str) -> bool:
    """Is ``name`` fit for ``[web] allowed_hosts``: ``*``, a DNS name or an IP address?"""
    if name == "*":
        return True
    name = _normal(name)
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return bool(_HOSTNAME.match(name))
    return True


def host_name(header: str) -> str | None:
    """The name in a ``Host`` header, without port, lower case, no trailing dot (pure);
    None when it is not a plausible host."""
    header = header.strip().lower()
    if header.startswith("["):  # [::1]:8118
        end = header.find("]")
        if end < 0 or (header[end + 1:] and not header[end + 1:].startswith(":")):
            return None
        return header[1:end] or None
    name, _, port = header.partition(":")
    if port and not port.isdigit():
        return None
    name = name.rstrip(".")
    return name or None


def allowed_hosts(web: WebSettings) -> frozenset[str] | None:
    """The names the web answers to (pure): the listen host, ``site_url``'s and ``public_url``'s
    hosts, loopback and
    ``allowed_hosts``; None when ``allowed_hosts`` contains ``*`` (no check)."""
    if "*" in web.allowed_hosts:
        return None
    names = set(LOOPBACK_NAMES)
    listen_host = _normal(web.listen.rpartition(":")[0])
    if listen_host:
        names.add(listen_host)
    for url in (web.site_url, web.public_url):
        site_host = urlsplit(url).hostname if url else None
        if site_host:
            names.add(_normal(site_host))
    names.update(_normal(h) for h in web.allowed_hosts if h.strip())
    return frozenset(names)


def beyond_loopback(host: str) -> bool:
    """Does listening on ``host`` accept connections from other machines? (pure; a name other
    than ``localhost`` may resolve to anything, so it counts as beyond)."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True
