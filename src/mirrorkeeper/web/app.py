"""The dashboard and JSON API (Starlette), served by the daemon in the same process (DESIGN §9).

Read-only unless a token file is configured; every action (sync now, acknowledge) needs that
token. Paths never come from a request: a run's log is found through its id in the store, and
must lie inside the log directory. Pages are plain HTML tables and inline SVG; the script only
adds the live progress (server-sent events) and the uPlot graphs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from .. import __version__
from ..config.durations import format_duration
from ..config.spec import LOGO_TYPES
from ..logs import event, iso, open_run_log
from ..metrics.prometheus import registry_from
from ..overview import alert_row, public_row
from ..record.present import human_bytes, human_rate, run_json
from ..store.alerts import AlertStore
from ..sync.preflight import local_mtime
from . import compat, public
from .graphs import RANGES, downsample
from .guard import FrontDoor
from .reading import SharedReading
from .state import Backend, Overview, change_token, live_snapshot, mirror_states, read_overview

#: The most log text one request returns; the rest is on disk (`mirrorkeeper logs`).
LOG_LIMIT_BYTES = 4 * 1024 * 1024
MAX_POINTS = 1000


class IdConvertor(Convertor[int]):
    """Row ids in paths: at most 18 digits, so every match fits the store's 64-bit integers
    (a longer number is simply no route: 404, never an overflow in the database driver)."""

    regex = "[0-9]{1,18}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(int(value))


register_url_convertor("id", IdConvertor())


def _package_dir(name: str) -> str:
    return str(resources.files("mirrorkeeper.web") / name)


def _ago(epoch: float | None) -> str:
    if epoch is None:
        return "never"
    seconds = time.time() - epoch
    return f"{format_duration(abs(seconds))} {'ago' if seconds >= 0 else 'from now'}"


def _utc(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))


def int_param(request: Request, name: str, default: int | None, low: int, high: int,
              ) -> int | None:
    """A whole-number query parameter, clamped; a malformed one is the client's error (400)."""
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        return max(low, min(int(text), high))
    except ValueError:
        raise HTTPException(400, f"`{name}` must be a whole number") from None


class Cached:
    """A document built at most once per ``max_age`` seconds, however many clients ask.

    Public status pages poll (tunasync front ends every few seconds, each visitor's browser on
    its own), and their formats promise no fresher data, so one document serves them all for
    ``max_age`` seconds.
    """

    def __init__(self, build: Callable[[], Awaitable[Any]], max_age: float) -> None:
        self.build, self.max_age = build, max_age
        self.taken, self.value = -float("inf"), ""
        self.lock = asyncio.Lock()

    async def get(self) -> str:
        async with self.lock:
            if time.monotonic() - self.taken >= self.max_age:
                self.value = json.dumps(await self.build())
                self.taken = time.monotonic()
            return self.value


def create_app(backend: Backend, public_cache_seconds: float = 5.0) -> Starlette:
    """``public_cache_seconds``: how long ``/jobs`` and ``/mirrorz.json`` are reused."""
    templates = Jinja2Templates(directory=_package_dir("templates"))
    templates.env.globals["version"] = __version__  # in static URLs: a new release, new files
    templates.env.filters.update(bytes=human_bytes, rate=human_rate, ago=_ago, iso=iso,
                                 duration=lambda s: format_duration(s) if s is not None else "",
                                 utc=_utc)
    static = Path(_package_dir("static"))
    public_css = (static / "public.css").read_text(encoding="utf-8")
    public_js = (static / "public.js").read_text(encoding="utf-8")
    public_headers = {"content-security-policy": public.public_csp(public_css, public_js)}

    def config_mirror(name: str) -> Any:
        mirror = backend.config.mirrors.get(name)
        if mirror is None:
            raise HTTPException(404, f"no mirror `{name}`")
        return mirror

    def token_ok(given: str | None) -> bool:
        path = backend.config.web.token_file
        if not path or not given:
            return False
        try:
            expected = Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:  # checked at start; changed since
            event("web.token_unreadable", level=logging.ERROR, path=path, error=str(exc))
            return False
        return bool(expected) and hmac.compare_digest(expected.encode(), given.encode())

    async def require_token(request: Request) -> None:
        if not backend.config.web.token_file:
            raise HTTPException(403, "actions are off: set [web] token_file in the config")
        header = request.headers.get("authorization", "")
        given = header[7:].strip() if header.lower().startswith("bearer ") else None
        if given is None and is_form(request):
            # The HTML forms post one urlencoded field; parsed here, no multipart library.
            # The front door has already bounded the body (MAX_BODY_BYTES).
            fields = parse_qs((await request.body()).decode("utf-8", "replace"))
            given = fields.get("token", [None])[0]
        if not token_ok(given):
            raise HTTPException(401, "a valid token is needed (Authorization: Bearer TOKEN)")

    def is_form(request: Request) -> bool:
        return request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded")

    def run_or_404(run_id: int) -> Any:
        record = backend.store.run(run_id)
        if record is None or record.mirror not in backend.config.mirrors:
            raise HTTPException(404, f"no run {run_id}")
        return record

    def run_detail(record: Any) -> dict[str, Any]:
        data = run_json(record)
        data["attempts"] = [{**dataclasses.asdict(a), "started_at": iso(a.started_at),
                             "finished_at": iso(a.finished_at)} for a in record.attempts]
        data["findings"] = backend.store.findings(record.run_id)
        return data

    def log_text(record: Any) -> str:
        log_dir = Path(backend.config.settings.log_dir).resolve()
        path = Path(record.log_path)
        if not record.log_path or not path.resolve().is_relative_to(log_dir):
            raise HTTPException(404, "this run has no log in the log directory")
        try:
            with open_run_log(path) as handle:
                text = handle.read(LOG_LIMIT_BYTES)
        except OSError:
            raise HTTPException(404, "the run's log is gone (pruned?)") from None
        return text

    # -- every mirror at once: one read of the store and one rendering per page, shared ----
    shared = SharedReading(partial(read_overview, backend), partial(change_token, backend),
                            max_age=1.0)

    async def derived(key: Any, make: Callable[[Overview], bytes]) -> bytes:
        """``make(overview)`` (blocking: in a worker thread), once per reading."""
        return await (await shared.get()).memo(key, make)

    def json_body(content: Any) -> bytes:
        return bytes(JSONResponse(content).body)

    def mirror_row(overview: Overview, name: str) -> dict[str, Any]:
        row = overview.row(name)
        if row is None:  # the config was reloaded since the reading was taken
            raise HTTPException(404, f"no mirror `{name}`")
        return row

    def render(name: str, **context: Any) -> bytes:
        """A page as :func:`page` renders it, to be shared by every client (no request)."""
        context.update(site=backend.config.web.site_name or backend.config.settings.hostname,
                       actions=bool(backend.config.web.token_file),
                       home="/admin" if backend.config.web.public else "/")
        return templates.env.get_template(name).render(context).encode()

    # -- JSON API ---------------------------------------------------------------------------
    async def api_status(request: Request) -> Response:
        host = request.query_params.get("host")  # a fleet: one host's mirrors
        if host is not None:  # rare, and any string: filtered per request, not kept
            rows = (await shared.get()).value.rows
            return JSONResponse([public_row(row) for row in rows if row.get("host") == host])
        return Response(await derived("api_status", lambda o: json_body(
            [public_row(row) for row in o.rows])), media_type="application/json")

    async def api_mirror(request: Request) -> Response:
        name = config_mirror(request.path_params["name"]).name

        def make(overview: Overview) -> bytes:
            row = public_row(mirror_row(overview, name))
            row["alerts"] = [alert_row(a) for a in overview.alerts if a["mirror"] == name]
            row["polls"] = [{**p, "polled_at": iso(p["polled_at"])}
                            for p in backend.store.polls(name, 10)]
            return json_body(row)

        return Response(await derived(("api_mirror", name), make),
                        media_type="application/json")

    async def api_runs(request: Request) -> Response:
        mirror = config_mirror(request.path_params["name"])
        limit = int_param(request, "limit", 50, 1, 500) or 50
        before = int_param(request, "before", None, 0, 2**62)
        rows = await run_in_threadpool(backend.store.run_rows, mirror.name, limit, before)
        for row in rows:
            row["started_at"], row["finished_at"] = iso(row["started_at"]), iso(
                row["finished_at"])
        return JSONResponse(rows)

    async def api_series(request: Request) -> Response:
        mirror = config_mirror(request.path_params["name"])
        span = RANGES.get(request.query_params.get("range", "week"))
        if span is None:
            raise HTTPException(400, f"range is one of {', '.join(RANGES)}")
        points = int_param(request, "points", 300, 10, MAX_POINTS) or 300
        end = time.time()
        rows = await run_in_threadpool(backend.store.series, mirror.name, end - span)
        return JSONResponse({"mirror": mirror.name, "start": end - span, "end": end,
                             "runs": len(rows), **downsample(rows, end - span, end, points)})

    async def api_run(request: Request) -> Response:
        record = await run_in_threadpool(run_or_404, request.path_params["run_id"])
        return JSONResponse(await run_in_threadpool(run_detail, record))

    async def api_run_log(request: Request) -> Response:
        record = await run_in_threadpool(run_or_404, request.path_params["run_id"])
        return PlainTextResponse(await run_in_threadpool(log_text, record))

    async def api_alerts(request: Request) -> Response:
        show_all = request.query_params.get("all") in ("1", "true")
        rows = await run_in_threadpool(AlertStore(backend.store.engine).recent, 200, show_all)
        return JSONResponse([alert_row(a) for a in rows])

    async def api_ack(request: Request) -> Response:
        await require_token(request)
        alert_id = request.path_params["alert_id"]
        astore = AlertStore(backend.store.engine)
        if await run_in_threadpool(astore.get, alert_id) is None:
            raise HTTPException(404, f"no alert {alert_id}")
        await run_in_threadpool(astore.update, alert_id, acked_at=time.time())
        if is_form(request) and "application/json" not in request.headers.get("accept", ""):
            return RedirectResponse("/alerts", status_code=303)
        return JSONResponse({"id": alert_id, "acked": True})

    async def api_sync(request: Request) -> Response:
        await require_token(request)
        mirror = config_mirror(request.path_params["name"])
        if not mirror.enabled:
            raise HTTPException(409, f"mirror `{mirror.name}` is disabled")
        backend.enqueue(mirror.name, "push")
        if is_form(request) and "application/json" not in request.headers.get("accept", ""):
            return RedirectResponse(f"/mirrors/{mirror.name}", status_code=303)
        return JSONResponse({"mirror": mirror.name, "queued": True}, status_code=202)

    async def jobs_document() -> list[dict[str, Any]]:
        rows = (await shared.get()).value.rows
        return [compat.tunasync_job(s) for s in mirror_states(backend, rows)]

    async def mirrorz_document() -> dict[str, Any]:
        web = backend.config.web
        site = {"url": web.site_url, "abbr": web.site_abbr, "name": web.site_name}
        rows = (await shared.get()).value.rows
        return compat.mirrorz(mirror_states(backend, rows), site, time.time())

    jobs_cache = Cached(jobs_document, max_age=public_cache_seconds)
    mirrorz_cache = Cached(mirrorz_document, max_age=public_cache_seconds)

    async def events(request: Request) -> Response:
        async def stream() -> AsyncIterator[str]:
            yield "retry: 2000\n\n"
            while not backend.stop.is_set() and not await request.is_disconnected():
                live = await derived("events", lambda o: json.dumps(live_snapshot(o)).encode())
                yield f"data: {live.decode()}\n\n"
                await asyncio.sleep(1.0)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    async def tunasync_jobs(request: Request) -> Response:
        return Response(await jobs_cache.get(), media_type="application/json")

    async def mirrorz_json(request: Request) -> Response:
        return Response(await mirrorz_cache.get(), media_type="application/json",
                        headers={"Access-Control-Allow-Origin": "*"})

    async def metrics(request: Request) -> Response:
        return Response(await derived("metrics", lambda o: generate_latest(
            registry_from(backend.config, o.summaries, o.taken,
                          {r["mirror"]: r["snapshots"] for r in o.rows if r.get("snapshots")}))),
            media_type=CONTENT_TYPE_LATEST)

    # -- pages --------------------------------------------------------------------------------
    def page(request: Request, name: str, **context: Any) -> Response:
        context.update(site=backend.config.web.site_name or backend.config.settings.hostname,
                       actions=bool(backend.config.web.token_file),
                       home="/admin" if backend.config.web.public else "/")
        return templates.TemplateResponse(request, name, context)

    def fleet_hosts(overview: Overview) -> list[str]:
        """The hosts whose mirrors the page lists (none outside a fleet)."""
        return sorted({row["host"] for row in overview.rows if row.get("host")})

    async def overview_page(request: Request) -> Response:
        host = request.query_params.get("host") or None  # a fleet: one host's mirrors
        reading = await shared.get()
        hosts = fleet_hosts(reading.value)
        if host is not None and host not in hosts:  # any string: rendered once, not kept
            return HTMLResponse(render("overview.html", rows=[], hosts=hosts, host=host))
        return HTMLResponse(await derived(("overview_page", host), lambda o: render(
            "overview.html", hosts=hosts, host=host,
            rows=[r for r in o.rows if host is None or r.get("host") == host])))

    async def mirror_page(request: Request) -> Response:
        name = config_mirror(request.path_params["name"]).name

        def make(overview: Overview) -> bytes:
            return render("mirror.html", row=mirror_row(overview, name),
                          mirror=backend.config.mirrors[name],
                          runs=backend.store.run_rows(name, 50),
                          alerts=[a for a in overview.alerts if a["mirror"] == name],
                          ranges=list(RANGES))

        return HTMLResponse(await derived(("mirror_page", name), make))

    async def run_page(request: Request) -> Response:
        record = await run_in_threadpool(run_or_404, request.path_params["run_id"])
        detail = await run_in_threadpool(run_detail, record)
        try:
            text = await run_in_threadpool(log_text, record)
        except HTTPException as exc:
            text = f"({exc.detail})"
        return page(request, "run.html", run=detail, log=text)

    async def alerts_page(request: Request) -> Response:
        rows = await run_in_threadpool(AlertStore(backend.store.engine).recent, 200, True)
        return page(request, "alerts.html", alerts=[alert_row(a) for a in rows])

    # -- the public site ([web] public): read-only, no script, one request per page ----------
    def public_on() -> None:
        if not backend.config.web.public:
            raise HTTPException(404, "the public pages are off: set [web] public = true")

    def behind_upstream(name: str) -> float | None:
        """The newest poll's upstream signal against our copy's (a query and a stat)."""
        mirror = backend.config.mirrors[name]
        signal = mirror.settings.update_signal
        poll = backend.store.last_poll(name) if signal else None
        if not signal or poll is None:
            return None
        return public.upstream_lag(poll["upstream_mtime"], local_mtime(
            mirror.dest, signal, mirror.settings.signal_kind))

    def public_mirrors(overview: Overview) -> list[public.PublicMirror]:
        config = backend.config
        rows = [r for r in overview.rows if r["enabled"]]
        percent = {r["mirror"]: r["progress_percent"] for r in rows}
        return [public.public_mirror(
            state, config.mirrors[state.name].info,
            config.mirrors[state.name].settings.stale_after, percent[state.name],
            config.web.files_url(), overview.taken, behind_upstream(state.name))
            for state in mirror_states(backend, rows)]

    def render_public(name: str, overview: Overview, **context: Any) -> bytes:
        web = backend.config.web
        return render(name, css=public_css, logo=bool(web.logo), taken=overview.taken,
                      states=public.STATES, **context)

    async def front_page(request: Request) -> Response:
        if not backend.config.web.public:
            return await overview_page(request)
        return HTMLResponse(await derived("public_page", lambda o: render_public(
            "public.html", o, mirrors=public_mirrors(o), script=public_js)),
            headers=public_headers)

    async def help_page(request: Request) -> Response:
        public_on()
        name = config_mirror(request.path_params["name"]).name

        def make(overview: Overview) -> bytes:
            mirror = next((m for m in public_mirrors(overview) if m.name == name), None)
            if mirror is None:  # disabled: not on the public site
                raise HTTPException(404, f"no mirror `{name}`")
            snippets = public.help_snippets(backend.config.mirrors[name].info,
                                            mirror.files_url, name)
            return render_public("public_help.html", overview, m=mirror, snippets=snippets,
                                 titles=[public.snippet_title(t) for t in snippets])

        return HTMLResponse(await derived(("public_help", name), make),
                            headers=public_headers)

    async def about_page(request: Request) -> Response:
        public_on()
        web = backend.config.web

        def make(overview: Overview) -> bytes:
            return render_public("public_about.html", overview, contact=web.contact,
                                 contact_href=public.contact_href(web.contact),
                                 sponsor=web.sponsor,
                                 count=len([r for r in overview.rows if r["enabled"]]))

        return HTMLResponse(await derived("public_about", make), headers=public_headers)

    async def robots(request: Request) -> Response:
        return PlainTextResponse(public.robots_txt(backend.config.web.public))

    async def logo(request: Request) -> Response:
        public_on()
        path = backend.config.web.logo
        if not path:
            raise HTTPException(404, "no logo: set [web] logo")
        try:
            data = await run_in_threadpool(Path(path).read_bytes)
        except OSError:
            raise HTTPException(404, "the logo file is gone") from None
        return Response(data, media_type=LOGO_TYPES.get(Path(path).suffix.lower(),
                                                        "application/octet-stream"),
                        headers={"cache-control": "max-age=3600"})

    routes = [
        Route("/", front_page),
        Route("/admin", overview_page),
        Route("/about", about_page),
        Route("/help/{name}", help_page),
        Route("/robots.txt", robots),
        Route("/logo", logo),
        Route("/mirrors/{name}", mirror_page),
        Route("/runs/{run_id:id}", run_page),
        Route("/alerts", alerts_page),
        Route("/api/status", api_status),
        Route("/api/mirrors/{name}", api_mirror),
        Route("/api/mirrors/{name}/runs", api_runs),
        Route("/api/mirrors/{name}/series", api_series),
        Route("/api/mirrors/{name}/sync", api_sync, methods=["POST"]),
        Route("/api/runs/{run_id:id}", api_run),
        Route("/api/runs/{run_id:id}/log", api_run_log),
        Route("/api/alerts", api_alerts),
        Route("/api/alerts/{alert_id:id}/ack", api_ack, methods=["POST"]),
        Route("/api/events", events),
        Route("/jobs", tunasync_jobs),
        Route("/mirrorz.json", mirrorz_json),
        Route("/metrics", metrics),
        Mount("/static", StaticFiles(directory=_package_dir("static")), name="static"),
    ]
    return Starlette(routes=routes,
                     middleware=[Middleware(FrontDoor, web=lambda: backend.config.web)])
