"""`dandelion serve`: local Ray plus the app on the embedded default, bound to loopback."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path

from dandelion.config import load_settings


def _serve(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    # Local runs need no cluster token; a cluster operator sets RAY_AUTH_MODE themselves.
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray
    from ray import serve

    from dandelion.serve.app import APP_NAME, build_app
    from dandelion.serve.gateway import SESSION_PATH

    print(f"Starting Ray ({args.num_cpus or 'all'} CPUs) ...", flush=True)
    ray.init(
        num_cpus=args.num_cpus,
        include_dashboard=False,
        log_to_driver=args.verbose,
        _metrics_export_port=args.metrics_port,
    )
    serve.start(http_options={"host": args.host, "port": args.port})
    print("Loading models (VAD, Whisper, LLM, TTS) ...", flush=True)
    started = time.monotonic()
    serve.run(build_app(settings), name=APP_NAME, route_prefix="/")
    print(f"Ready in {time.monotonic() - started:.1f} s.", flush=True)
    print(f"  WebSocket: ws://{args.host}:{args.port}{SESSION_PATH}", flush=True)
    print(f"  Health:    http://{args.host}:{args.port}/healthz", flush=True)
    print(
        f"  Talk:      dandelion-client --url ws://{args.host}:{args.port}{SESSION_PATH}",
        flush=True,
    )
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    print("Shutting down ...", flush=True)
    # Ray was started here, so ray.shutdown() ends every replica with it; serve.shutdown() can
    # wait indefinitely for a replica's graceful drain.
    ray.shutdown()
    return 0


def _render(args: argparse.Namespace) -> int:
    from dandelion.serve.config_render import render_serve_config

    settings = load_settings(args.config)
    text = render_serve_config(settings, host=args.host, port=args.port)
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dandelion", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the voice assistant server")
    serve_cmd.add_argument("--config", help="settings YAML (see docs/configuration.md)")
    serve_cmd.add_argument("--host", default="127.0.0.1", help="bind address (default loopback)")
    serve_cmd.add_argument("--port", type=int, default=8000)
    serve_cmd.add_argument("--num-cpus", type=int, default=None, help="CPUs Ray may use")
    serve_cmd.add_argument("--metrics-port", type=int, default=None, help="Prometheus export")
    serve_cmd.add_argument("--verbose", action="store_true", help="show replica logs")
    serve_cmd.set_defaults(run=_serve)
    render = commands.add_parser("render-config", help="write a `serve run` config YAML")
    render.add_argument("--config", help="settings YAML")
    render.add_argument("--host", default="127.0.0.1")
    render.add_argument("--port", type=int, default=8000)
    render.add_argument("--output", "-o", help="file to write (default stdout)")
    render.set_defaults(run=_render)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
