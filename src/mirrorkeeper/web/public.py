"""What the public status and help pages say about each mirror (pure: plain values in, plain
values out).

A mirror's public state is read from the same :class:`~.compat.MirrorState` that tunasync's
``/jobs`` and ``mirrorz.json`` are built from, so the page and those documents cannot
disagree: syncing is MirrorZ's ``Y``, failing its ``F``, fresh and stale its ``S``, and so on.
Every state has words and a symbol, never only a colour.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from ..config.spec import ProfileInfo
from .compat import MirrorState, tunasync_status

#: Each public state: the words shown, a symbol (for those who do not see the colour) and
#: what it means, as the legend explains it.
STATES: dict[str, tuple[str, str, str]] = {
    "fresh": ("Fresh", "✓", "synced successfully, more recently than it is due"),
    "syncing": ("Syncing", "↻", "a sync is running now"),
    "queued": ("Queued", "…", "a sync is about to start"),
    "stale": ("Stale", "!", "the last successful sync is older than it should be"),
    "failing": ("Failing", "✗", "the last sync failed; the files are from the last success"),
    "never": ("Not yet synced", "○", "no sync has finished yet"),
    "disabled": ("Paused", "‖", "not synced any more"),
}


@dataclass(frozen=True)
class PublicMirror:
    """One row of the public page."""

    name: str
    description: str
    state: str  # a key of STATES
    percent: float | None  # while syncing, when known
    last_success_at: float | None
    size_bytes: int | None
    files_url: str
    has_help: bool
    #: A sync process runs now (the live script reloads the page when this changes).
    running: bool = False
    #: How far our copy's update signal is behind the upstream's at its last poll (seconds;
    #: None: not known — no signal, never polled, or no copy yet).
    behind_upstream: float | None = None

    @property
    def words(self) -> str:
        text = STATES[self.state][0]
        if self.state == "syncing" and self.percent is not None:
            text += f" {self.percent:.0f}%"
        return text

    @property
    def symbol(self) -> str:
        return STATES[self.state][1]


def public_state(state: MirrorState, stale_after: float, now: float) -> str:
    """A key of :data:`STATES`, by the same rules as tunasync's status word (and MirrorZ's
    letter), with success split by age into fresh and stale."""
    word = tunasync_status(state)
    if word == "disabled":
        return "disabled"
    if word == "syncing":
        return "syncing"
    if word == "pre-syncing":
        return "queued"
    if word == "none":
        return "never"
    if word == "failed":
        return "failing"
    fresh = state.last_success_at is not None and now - state.last_success_at < stale_after
    return "fresh" if fresh else "stale"


def files_url(base: str, name: str) -> str:
    """Where a mirror's files are served: ``BASE/NAME`` (as ``mirrorz.json`` says ``/NAME``)."""
    return f"{base.rstrip('/')}/{name}"


def upstream_lag(upstream_mtime: float | None, local_mtime: float | None) -> float | None:
    """How far our copy is behind the upstream's last publish (None when either is unknown:
    a mirror with no copy yet is not "55 years behind")."""
    if upstream_mtime is None or local_mtime is None:
        return None
    return max(0.0, upstream_mtime - local_mtime)


def public_mirror(state: MirrorState, info: ProfileInfo, stale_after: float,
                  percent: float | None, base_url: str, now: float,
                  behind_upstream: float | None = None) -> PublicMirror:
    return PublicMirror(
        name=state.name, description=info.description,
        state=public_state(state, stale_after, now), percent=percent,
        last_success_at=state.last_success_at, size_bytes=state.size_bytes,
        files_url=files_url(base_url, state.name),
        has_help=bool(info.help), behind_upstream=behind_upstream, running=state.running)


def help_snippets(info: ProfileInfo, url: str, name: str) -> list[str]:
    """The profile's snippets with ``{url}`` and ``{name}`` filled in; nothing else is
    expanded, so ``$releasever``, ``$repo`` and braces in R code stay as they are."""
    return [text.replace("{url}", url).replace("{name}", name).strip("\n")
            for text in info.help]


def snippet_title(snippet: str) -> str:
    """A snippet's heading: its first line when that is a comment (``# /etc/apt/...``)."""
    first = snippet.split("\n", 1)[0].strip()
    return first.lstrip("#").strip() if first.startswith("#") else "Settings"


def contact_href(contact: str) -> str | None:
    """A link for ``[web] contact``: an e-mail address or an http(s) URL; None otherwise
    (shown as text, never as a link of another scheme)."""
    text = contact.strip()
    if text.startswith(("https://", "http://")) and " " not in text:
        return text
    if "@" in text and " " not in text and ":" not in text and "/" not in text:
        return f"mailto:{text}"
    return None


def robots_txt(public: bool) -> str:
    """Crawlers may read the public pages, never the dashboard, the API or the logs."""
    if not public:
        return "User-agent: *\nDisallow: /\n"
    return ("User-agent: *\nAllow: /$\nAllow: /about\nAllow: /help/\n"
            "Disallow: /admin\nDisallow: /api/\nDisallow: /mirrors/\nDisallow: /runs/\n"
            "Disallow: /alerts\nDisallow: /metrics\n")


def inline_hash(text: str) -> str:
    """The CSP source that allows exactly this inline ``<style>`` or ``<script>`` (one
    request per page, and nothing else inline)."""
    digest = hashlib.sha256(text.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def public_csp(css: str, script: str) -> str:
    """The public pages' policy: this one inline style and script, own images and events."""
    return (f"default-src 'none'; script-src {inline_hash(script)}; "
            f"style-src {inline_hash(css)}; img-src 'self' data:; connect-src 'self'; "
            "form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
