"""``chainrule playground``: a local page that trains a network while you watch (level 8).

The server (:mod:`chainrule.playground.server`, Starlette on uvicorn) gives
every browser tab its own session: a data set from :mod:`chainrule.datasets`
(moons, circles, spirals, xor, a 1-D regression), a network of chainrule's own
layers and a :class:`~chainrule.train.Trainer`. The page sets layers, widths,
activation, loss, optimizer, learning rate, batch size and regularisation;
it redraws the decision boundary (or the regression curve), the training and
validation loss and the per-layer gradient norms as updates arrive on a
WebSocket; it pauses, opens the explain view of the current network on one
example, and exports the model (safetensors) and its explain spec (JSON).

Needs the ``web`` extra: ``pip install "chainrule[web]"``.
"""

from __future__ import annotations

import socket
import webbrowser

from chainrule.playground.server import LOOPBACK, Settings, create_app


def allowed_hosts(host: str) -> list[str]:
    """Host names the server answers to: loopback names, plus ``host`` (any, for a wildcard address)."""
    if host in ("0.0.0.0", "::", ""):
        return ["*"]
    return list(LOOPBACK) if host in LOOPBACK else [*LOOPBACK, host]


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free port the system picks)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    return sock


def url_of(sock: socket.socket, host: str) -> str:
    """The page's address for a bound socket."""
    port = sock.getsockname()[1]
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else (f"[{host.strip('[]')}]" if ":" in host else host)
    return f"http://{shown}:{port}/"


def serve(
    host: str = "127.0.0.1", port: int = 0, settings: Settings | None = None, open_browser: bool = False
) -> None:
    """Serve the playground on ``host:port`` until interrupted; prints the address first.

    Raises
    ------
    OSError
        If the address cannot be bound (port in use, unknown interface).
    """
    import uvicorn

    settings = settings or Settings(allowed_hosts=allowed_hosts(host))
    sock = bind(host, port)
    url = url_of(sock, host)
    print(f"chainrule playground: serving on {url} (Ctrl+C to stop)", flush=True)
    if open_browser:
        webbrowser.open(url)
    config = uvicorn.Config(create_app(settings), log_level="warning", ws="auto", lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


__all__ = ["Settings", "allowed_hosts", "bind", "create_app", "serve", "url_of"]
