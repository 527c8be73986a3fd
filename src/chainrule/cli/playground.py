"""``chainrule playground``: serve the page that trains a network while you watch.

Part of :mod:`chainrule.cli`. Serves on 127.0.0.1 (a free port unless
``--port`` is given); another interface only when ``--host`` names it.
"""

from __future__ import annotations

import argparse
import sys

from chainrule.cli.common import positive_int

NAME = "playground"
HELP = "serve a local page that trains a network while you watch (needs chainrule[web])"


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
    from chainrule.playground import Settings, allowed_hosts, serve

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
