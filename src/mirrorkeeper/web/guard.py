"""The web's front door (ASGI middleware): the Host check, the body limit, security headers.

Every request passes here before any route sees it, so no endpoint can forget them:

- **Host.** A page on some other site can make a browser talk to the dashboard on 127.0.0.1 by
  pointing its own name at that address (DNS rebinding); the browser then sends that name as
  ``Host``. Only the names the admin configured are answered (400 otherwise).
- **Body.** Nothing here takes more than one small form field, so a request that announces a
  larger body is refused from its headers alone (413, connection closed), and a body without a
  length is counted as it arrives: a 1.5 GB upload must never be read into memory.
- **Headers.** ``nosniff``, no framing, and a Content-Security-Policy that allows only our own
  scripts, styles and connections (the templates carry no inline script or style).
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..config.spec import WebSettings
from .hosts import allowed_hosts, host_name

#: The largest request body any endpoint reads (the HTML forms post one token field).
MAX_BODY_BYTES = 16 * 1024
#: Our pages load only our own files; ``data:`` is the empty favicon.
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; "
                           "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
                           "frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "referrer-policy": "same-origin",
}


class FrontDoor:
    """ASGI middleware; ``web`` is called per request, so a reloaded config applies at once."""

    def __init__(self, app: ASGIApp, web: Callable[[], WebSettings],
                 max_body: int = MAX_BODY_BYTES) -> None:
        self.app, self.web, self.max_body = app, web, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in SECURITY_HEADERS.items():
                    headers.setdefault(key, value)
            await send(message)

        headers = Headers(scope=scope)
        refusal = self._refusal(headers)
        if refusal is not None:
            await refusal(scope, receive, send_with_headers)
            return
        await self.app(scope, self._counted(receive), send_with_headers)

    def _refusal(self, headers: Headers) -> PlainTextResponse | None:
        """A response from the headers alone, or None to let the request through."""
        names = allowed_hosts(self.web())
        given = headers.get("host")
        if names is not None and given is not None and host_name(given) not in names:
            return PlainTextResponse(
                "unknown Host; add the name to [web] allowed_hosts if it is yours\n", 400,
                headers={"connection": "close"})
        length = headers.get("content-length")
        if length is not None and not length.strip().isdigit():
            return PlainTextResponse("bad Content-Length\n", 400, headers={"connection": "close"})
        if length is not None and int(length) > self.max_body:
            return PlainTextResponse(f"request body over {self.max_body} bytes\n", 413,
                                     headers={"connection": "close"})
        return None

    def _counted(self, receive: Receive) -> Receive:
        """``receive`` that refuses (413) once the body passes the limit: a chunked upload
        announces no length."""
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise HTTPException(413, f"request body over {self.max_body} bytes",
                                        headers={"connection": "close"})
            return message

        return counted
