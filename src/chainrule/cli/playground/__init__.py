"""``chainrule playground``: a local page that trains a network while you watch.

Part of :mod:`chainrule.cli` (level 9). The server (:mod:`chainrule.cli.playground.server`,
Starlette on uvicorn) gives every browser tab its own session
(:mod:`chainrule.cli.playground.session`): a data set from :mod:`chainrule.datasets`
(moons, circles, spirals, xor, a 1-D regression), a network of chainrule's own
layers and a :class:`~chainrule.train.Trainer`. The page sets layers, widths,
activation, loss, optimizer, learning rate, batch size and regularisation; it
redraws the decision boundary (or the regression curve), the training and
validation loss and the per-layer gradient norms as updates arrive on a
WebSocket; it pauses, opens the explain view of the current network on one
example, and exports the model (safetensors) and its explain spec (JSON).

Serves on 127.0.0.1 (a free port unless ``--port`` is given); another interface
only when ``--host`` names it. Needs the ``web`` extra: ``pip install "chainrule[web]"``;
this module imports the server only when the command runs, so the rest of the
command line works without it.
"""

from __future__ import annotations

import argparse
import socket
import sys
import webbrowser
from typing import TYPE_CHECKING

from chainrule.cli.common import positive_int

if TYPE_CHECKING:
    from chainrule.cli.playground.server import Settings

NAME = "playground"
HELP = "serve a local page that trains a network while you watch (needs chainrule[web])"
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


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

    from chainrule.cli.playground.server import Settings, create_app

    settings = settings or Settings(allowed_hosts=allowed_hosts(host))
    sock = bind(host, port)
    url = url_of(sock, host)
    print(f"chainrule playground: serving on {url} (Ctrl+C to stop)", flush=True)
    if open_browser:
        webbrowser.open(url)
    config = uvicorn.Config(create_app(settings), log_level="warning", ws="auto", lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``chainrule playground``."""
    parser.add_argument("--host", default="127.0.0.1", help="interface to serve on (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=0, help="port (default 0: a free one, printed)")
    parser.add_argument("--open", action="store_true", help="open the page in the default browser")
    parser.add_argument("--max-sessions", type=positive_int, default=64, help="open tabs at most (64)")
    parser.add_argument(
        "--max-run-steps", type=positive_int, default=100_000, help="steps of one run at most (100000)"
    )
    parser.add_argument(
        "--idle-timeout", type=positive_int, default=600, help="seconds before a closed tab's session goes"
    )


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl+C; exit status 2 without the web extra or when the address cannot be bound."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        print(
            f"chainrule playground: needs the web extra ({exc.name} is missing): "
            "pip install 'chainrule[web]'",
            file=sys.stderr,
        )
        return 2
    from chainrule.cli.playground.server import Settings

    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"chainrule playground: serving on {args.host}, not only this machine: anyone who can reach it "
            "can train networks here.",
            file=sys.stderr,
        )
    settings = Settings(
        max_sessions=args.max_sessions,
        max_run_steps=args.max_run_steps,
        idle_timeout_s=float(args.idle_timeout),
        allowed_hosts=allowed_hosts(args.host),
    )
    try:
        serve(args.host, args.port, settings, open_browser=args.open)
    except KeyboardInterrupt:
        pass
    return 0


__all__ = ["HELP", "NAME", "add_arguments", "allowed_hosts", "bind", "run", "serve", "url_of"]
