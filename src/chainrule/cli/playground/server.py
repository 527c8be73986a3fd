"""The playground's web server: Starlette routes, one WebSocket stream per tab, bounded training.

Part of :mod:`chainrule.cli` (level 9).

Every browser tab creates its own :class:`~chainrule.cli.playground.session.Session`
(``POST /api/sessions``) and opens a WebSocket (``/api/sessions/{id}/stream``)
on which the server pushes one ``update`` message per chunk of training steps:
each step's number, batch loss and the wall time it ended (so a client can
measure the latency of every step's update), the training and validation loss,
the per-layer gradient norms and, at most :attr:`Settings.picture_every_s`
apart, the decision boundary or regression curve.

Bounds: at most :attr:`Settings.max_sessions` sessions; a run is at most
:attr:`Settings.max_run_steps` steps; a session's training stops when its last
stream closes, and a session with no stream and no request for
:attr:`Settings.idle_timeout_s` seconds is removed. Malformed requests get a 4xx
answer with a JSON body ``{"error": "..."}``.

All model work runs on one worker thread, in the order it was asked for.
# NOTE: one thread, not a pool: chainrule's grad mode (``no_grad``) is a process-wide
# flag, so an evaluation in one thread would switch off the graph of a step in another.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, TypeVar
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from chainrule.cli.playground import LOOPBACK
from chainrule.cli.playground.session import (
    ACTIVATIONS,
    DATASETS,
    LOSSES,
    MAX_LAYERS,
    MAX_WIDTH,
    OPTIMIZERS,
    Config,
    Session,
    parse_config,
)
from chainrule.errors import ChainruleError

T = TypeVar("T")
MAX_BODY = 64 * 1024


@dataclass
class Settings:
    """The server's bounds; the defaults suit one person's laptop and a class of about 30 tabs."""

    max_sessions: int = 64
    max_run_steps: int = 100_000
    idle_timeout_s: float = 600.0
    chunk_s: float = 0.02  # a training chunk's wall-time budget: each step's update waits at most this
    picture_every_s: float = 0.1
    allowed_hosts: list[str] = field(default_factory=lambda: list(LOOPBACK))

    def __repr__(self) -> str:
        return (
            f"Settings(max_sessions={self.max_sessions}, max_run_steps={self.max_run_steps}, "
            f"idle_timeout_s={self.idle_timeout_s}, chunk_s={self.chunk_s})"
        )


class ApiError(HTTPException):
    """A 4xx answer with a JSON message."""


class Live:
    """A session with its server-side state: streams, the training task, when it was last used."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.streams: set[WebSocket] = set()
        self.task: asyncio.Task[None] | None = None
        self.target = 0  # train until this step
        self.speed = 0  # steps per second; 0: as fast as the machine allows
        self.last_seen = time.monotonic()
        self.last_picture = 0.0
        self.lock = asyncio.Lock()

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()


class Playground:
    """The sessions, the worker thread and the routes' handlers."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sessions: dict[str, Live] = {}
        self.worker = ThreadPoolExecutor(1, thread_name_prefix="chainrule-playground")
        self.reaper: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"Playground(sessions={len(self.sessions)}, {self.settings!r})"

    async def work(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the worker thread; a chainrule error becomes a 400 answer."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self.worker, fn, *args)
        except ChainruleError as exc:
            raise ApiError(400, str(exc)) from exc

    def live(self, request: Request | WebSocket) -> Live:
        sid = request.path_params["sid"]
        live = self.sessions.get(sid)
        if live is None:
            raise ApiError(404, f"no session {sid!r} (closed, or removed after being idle); reload the page.")
        live.last_seen = time.monotonic()
        return live

    # ------------------------------------------------------------- training
    async def run(self, live: Live) -> None:
        """Train in chunks until the target step, pushing one update per chunk to every stream."""
        while True:
            try:
                while live.session.step < live.target and live.streams:
                    left = live.target - live.session.step
                    count = (
                        left
                        if not live.speed
                        else max(1, min(left, round(live.speed * self.settings.chunk_s)))
                    )
                    async with live.lock:
                        update = await self.work(self.chunk, live, count)
                    await self.push(live, update)
                    await asyncio.sleep(len(update["steps"]) / live.speed if live.speed else 0)
            except ApiError as exc:  # e.g. the loss became inf: say so, and stop
                live.target = live.session.step
                await self.push(live, {"type": "error", "message": exc.detail})
            await self.push(live, {"type": "paused", "step": live.session.step})
            # NOTE: checked again after the last await, so a run asked for meanwhile is not lost
            if not (live.session.step < live.target and live.streams):
                return

    def chunk(self, live: Live, count: int) -> dict[str, Any]:
        session = live.session
        done = session.train_for(count, self.settings.chunk_s)
        metrics = session.metrics()
        session.history.append(metrics)
        if len(session.history) > 4000:  # keep the chart's points bounded: every other old point
            session.history[1:2000] = session.history[1:2000:2]
        update: dict[str, Any] = {
            "type": "update",
            "steps": [d[0] for d in done],
            "batch_loss": [d[1] for d in done],
            "ended": [d[2] for d in done],
            "metrics": metrics,
            "grad_norms": session.grad_norms,
        }
        now = time.monotonic()
        if now - live.last_picture >= self.settings.picture_every_s or session.step >= live.target:
            live.last_picture = now
            update["picture"] = session.picture()
        update["sent"] = time.time()
        return update

    async def push(self, live: Live, message: dict[str, Any]) -> None:
        text = json.dumps(message)
        for ws in list(live.streams):
            try:
                await ws.send_text(text)
            except Exception:
                live.streams.discard(ws)

    async def stop(self, live: Live) -> None:
        live.target = live.session.step
        if live.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await live.task
            live.task = None

    async def reap(self) -> None:
        """Remove sessions without a stream that nobody asked anything of for ``idle_timeout_s``."""
        while True:
            await asyncio.sleep(min(30.0, max(0.05, self.settings.idle_timeout_s / 4)))
            now = time.monotonic()
            for sid, live in list(self.sessions.items()):
                if not live.streams and now - live.last_seen > self.settings.idle_timeout_s:
                    await self.stop(live)
                    self.sessions.pop(sid, None)

    # ------------------------------------------------------------- handlers
    async def body(self, request: Request) -> Any:
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise ApiError(413, f"request body of {len(raw)} bytes; at most {MAX_BODY}.")
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            where = (
                f" at line {exc.lineno}, column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
            )
            raise ApiError(400, f"request body is not valid JSON{where}.") from None

    async def create(self, request: Request) -> Response:
        config = parse_or_400(await self.body(request))
        if len(self.sessions) >= self.settings.max_sessions:
            raise ApiError(
                429, f"{len(self.sessions)} sessions are open, the most this server allows; close a tab."
            )
        sid = secrets.token_urlsafe(9)
        session = await self.work(Session, sid, config)
        self.sessions[sid] = Live(session)
        return JSONResponse(await self.work(session.state), status_code=201)

    async def get_state(self, request: Request) -> Response:
        live = self.live(request)
        async with live.lock:
            return JSONResponse(await self.work(live.session.state))

    async def configure(self, request: Request) -> Response:
        live = self.live(request)
        config = parse_or_400(await self.body(request))
        await self.stop(live)
        async with live.lock:
            await self.work(live.session.configure, config)
            state = await self.work(live.session.state)
        await self.push(live, {"type": "state", "state": state})
        return JSONResponse(state)

    async def train(self, request: Request) -> Response:
        live = self.live(request)
        data = await self.body(request)
        if not isinstance(data, dict) or set(data) - {"steps", "speed"}:
            raise ApiError(400, 'train: expected {"steps": N, "speed": S} (both optional).')
        most = self.settings.max_run_steps
        steps, speed = data.get("steps", most), data.get("speed", 0)
        for name, value, hi in (("steps", steps, most), ("speed", speed, 10_000)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= hi:
                raise ApiError(400, f"train: {name} must be an integer from 0 to {hi}, got {value!r}.")
        if not live.streams:
            raise ApiError(409, "train: open the session's stream (the page does) before training.")
        live.speed = speed
        live.target = live.session.step + steps
        if not live.running:
            live.task = asyncio.create_task(self.run(live))
        return JSONResponse({"step": live.session.step, "target": live.target}, status_code=202)

    async def pause(self, request: Request) -> Response:
        live = self.live(request)
        await self.stop(live)
        return JSONResponse({"step": live.session.step})

    async def step(self, request: Request) -> Response:
        live = self.live(request)
        await self.stop(live)
        live.target = live.session.step + 1
        async with live.lock:
            update = await self.work(self.chunk, live, 1)
        live.target = live.session.step
        await self.push(live, update)
        return JSONResponse(update)

    async def explain(self, request: Request) -> Response:
        live = self.live(request)
        split, index = request.query_params.get("split", "train"), request.query_params.get("example", "0")
        if not index.isdigit():
            raise ApiError(400, f"explain: example must be a non-negative integer, got {index!r}.")
        await self.stop(live)  # the view shows the network as it is: training pauses
        async with live.lock:
            page = await self.work(live.session.explain_html, split, int(index))
        return HTMLResponse(page)

    async def export(self, request: Request) -> Response:
        live = self.live(request)
        what = request.path_params["what"]
        stamp = f"{live.session.config.dataset}-step{live.session.step}"
        async with live.lock:
            if what == "model":
                data = await self.work(live.session.model_bytes)
                return Response(
                    data, media_type="application/octet-stream", headers=_attachment(f"{stamp}.safetensors")
                )
            if what == "spec":
                split, index = (
                    request.query_params.get("split", "train"),
                    request.query_params.get("example", "0"),
                )
                if not index.isdigit():
                    raise ApiError(400, f"export: example must be a non-negative integer, got {index!r}.")
                spec = await self.work(live.session.spec, split, int(index))
                body = json.dumps(spec, indent=1)
                return Response(body, media_type="application/json", headers=_attachment(f"{stamp}.json"))
        raise ApiError(404, f"export: unknown export {what!r}; expected 'model' or 'spec'.")

    async def close(self, request: Request) -> Response:
        live = self.live(request)
        await self.stop(live)
        self.sessions.pop(live.session.id, None)
        for ws in list(live.streams):
            with contextlib.suppress(Exception):
                await ws.close(1000)
        return Response(status_code=204)

    async def stream(self, websocket: WebSocket) -> None:
        if not _same_origin(websocket):
            await websocket.close(code=1008)
            return
        try:
            live = self.live(websocket)
        except ApiError as exc:
            await websocket.accept()
            await websocket.send_text(json.dumps({"type": "error", "message": exc.detail}))
            await websocket.close(code=1008)
            return
        await websocket.accept()
        live.streams.add(websocket)
        try:
            while True:  # the page sends nothing but pings; the loop notices a closed tab
                await websocket.receive_text()
                live.last_seen = time.monotonic()
        except WebSocketDisconnect:
            pass
        finally:
            live.streams.discard(websocket)
            live.last_seen = time.monotonic()
            if not live.streams:
                live.target = live.session.step  # nobody is watching: stop training

    async def page(self, request: Request) -> Response:
        return HTMLResponse(page_html(), headers={"Content-Security-Policy": CSP})

    async def options(self, request: Request) -> Response:
        return JSONResponse(options())


def parse_or_400(data: Any) -> Config:
    try:
        return parse_config(data)
    except ChainruleError as exc:
        raise ApiError(400, str(exc)) from exc


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


def _same_origin(websocket: WebSocket) -> bool:
    """A stream opened by a page of this server (or by a client that sends no Origin, like a script)."""
    origin = websocket.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == websocket.headers.get("host")


CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
    "frame-src 'self'; img-src 'self' data:; form-action 'none'; base-uri 'none'"
)


def options() -> dict[str, Any]:
    """The choices the page offers (and the server accepts)."""
    return {
        "datasets": list(DATASETS),
        "activations": list(ACTIVATIONS),
        "losses": {k: list(v) for k, v in LOSSES.items()},
        "optimizers": list(OPTIMIZERS),
        "max_layers": MAX_LAYERS,
        "max_width": MAX_WIDTH,
    }


def page_html() -> str:
    """The playground page with its script and style inline."""
    web = resources.files("chainrule.cli.playground") / "web"
    html = (web / "playground.html").read_text(encoding="utf-8")
    return (
        html.replace("/*STYLE*/", (web / "playground.css").read_text(encoding="utf-8"))
        .replace("/*SCRIPT*/", (web / "playground.js").read_text(encoding="utf-8"))
        .replace("/*OPTIONS*/", json.dumps(options()))
    )


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = (
        exc.detail if isinstance(exc, ApiError) else f"{request.method} {request.url.path}: {exc.detail}."
    )
    return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)


def create_app(settings: Settings | None = None) -> Starlette:
    """The playground as an ASGI application (for uvicorn, or :func:`chainrule.cli.playground.serve`)."""
    pg = Playground(settings or Settings())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pg.reaper = asyncio.create_task(pg.reap())
        try:
            yield
        finally:
            pg.reaper.cancel()
            for live in list(pg.sessions.values()):
                live.target = live.session.step
            pg.worker.shutdown(wait=False, cancel_futures=True)

    base = "/api/sessions/{sid}"
    routes = [
        Route("/", pg.page),
        Route("/api/options", pg.options),
        Route("/api/sessions", pg.create, methods=["POST"]),
        Route(base, pg.get_state, methods=["GET"]),
        Route(base, pg.close, methods=["DELETE"]),
        Route(base + "/close", pg.close, methods=["POST"]),  # what navigator.sendBeacon can send
        Route(base + "/config", pg.configure, methods=["PUT", "POST"]),
        Route(base + "/train", pg.train, methods=["POST"]),
        Route(base + "/pause", pg.pause, methods=["POST"]),
        Route(base + "/step", pg.step, methods=["POST"]),
        Route(base + "/explain", pg.explain),
        Route(base + "/export/{what}", pg.export),
        WebSocketRoute(base + "/stream", pg.stream),
    ]
    hosts = pg.settings.allowed_hosts
    app = Starlette(
        routes=routes,
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=hosts)],
        exception_handlers={HTTPException: _api_error},
        lifespan=lifespan,
    )
    app.state.playground = pg
    return app


__all__ = ["CSP", "Playground", "Settings", "create_app", "options", "page_html"]
