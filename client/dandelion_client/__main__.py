"""dandelion-client: talk to a Dandelion server (live), or stream files to it (file mode)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys

DEFAULT_URL = "ws://127.0.0.1:8000/v1/session"


def _device(value: str | None) -> str | int | None:
    if value is None:
        return None
    return int(value) if value.isdigit() else value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dandelion-client", description=__doc__)
    parser.add_argument("--url", default=DEFAULT_URL, help=f"server session URL ({DEFAULT_URL})")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("DANDELION_API_KEY"),
        help="the server's API key, sent as `Authorization: Bearer` (default: $DANDELION_API_KEY; "
        "prefer the variable: a key on the command line stays in the shell's history)",
    )
    files = parser.add_argument_group("file mode")
    files.add_argument("--input", action="append", help="audio file to speak (repeatable)")
    files.add_argument("--output", help="save the assistant's audio as played (WAV)")
    files.add_argument("--events", help="write every server event, with receive time (JSONL)")
    files.add_argument(
        "--video",
        metavar="OUT.mp4",
        help="ask for the avatar's video (JPEG frames) and save it with the audio as played "
        "(MP4: H.264 + AAC; needs pip install 'dandelion[avatar]')",
    )
    files.add_argument("--interrupt", help="audio file spoken over the reply (barge-in)")
    files.add_argument("--interrupt-after", type=float, default=0.5, help="s into the reply")
    files.add_argument("--instructions", help="system instructions for this session")
    files.add_argument("--timeout", type=float, default=60.0, help="s to wait for each reply")
    live = parser.add_argument_group("live mode")
    live.add_argument("--input-device", help="microphone (index or name)")
    live.add_argument("--output-device", help="speaker (index or name)")
    live.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    live.add_argument(
        "--no-echo-cancel",
        dest="echo_cancel",
        action="store_false",
        help="do not cancel the speaker's echo in the microphone (on by default: WebRTC's AEC3 "
        "from LiveKit's SDK, in the client extra)",
    )
    live.add_argument(
        "--mute-mic-while-playing",
        action="store_true",
        help="half duplex: send silence while the reply plays",
    )
    live.add_argument(
        "--window",
        choices=("jpeg", "h264", "off"),
        default="jpeg",
        help="the avatar in a window, sent as JPEG (LAN) or H.264 (internet; needs PyAV), "
        "or off (default: jpeg; needs a screen, Tk and Pillow)",
    )
    live.add_argument("--duration", type=float, help="stop after this many seconds")
    args = parser.parse_args(argv)

    if args.list_devices:
        import sounddevice as sd

        print(sd.query_devices())
        return 0
    if args.input:
        return asyncio.run(_file_mode(args))
    if args.echo_cancel:
        from dandelion.errors import BackendUnavailableError
        from dandelion_client.echo_cancel import check_dependencies

        try:
            check_dependencies()  # before the session, not in the middle of it
        except BackendUnavailableError as exc:
            print(f"live mode: {exc}", file=sys.stderr)
            return 2
    from dandelion_client.live import LiveOptions, run_live

    options = LiveOptions(
        url=args.url,
        input_device=_device(args.input_device),
        output_device=_device(args.output_device),
        mute_while_playing=args.mute_mic_while_playing,
        video=None if args.window == "off" else args.window,
        duration_s=args.duration,
        echo_cancel=args.echo_cancel,
        api_key=args.api_key,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_live(options))
    return 0


async def _file_mode(args: argparse.Namespace) -> int:
    from dandelion_client.file_mode import Utterance, run_file_session, save_outputs

    if args.video:
        from dandelion.errors import BackendUnavailableError
        from dandelion_client.mp4 import check_dependencies

        try:
            check_dependencies()  # before the session, not after it
        except BackendUnavailableError as exc:
            print(f"--video: {exc}", file=sys.stderr)
            return 2
    inputs = [Utterance.load(path) for path in args.input]
    interrupt = Utterance.load(args.interrupt) if args.interrupt else None
    recorder = await run_file_session(
        args.url,
        inputs,
        interrupt=interrupt,
        interrupt_after_s=args.interrupt_after,
        instructions=args.instructions,
        reply_timeout_s=args.timeout,
        video="jpeg" if args.video else None,
        api_key=args.api_key,
    )
    save_outputs(recorder, args.output, args.events)
    failed = False
    if args.video:
        from dandelion_client.mp4 import write_mp4

        try:
            summary = write_mp4(args.video, recorder)
        except ValueError as exc:
            print(f"--video: {exc}", file=sys.stderr)
            failed = True
        else:
            print(f"video:     {args.video} ({summary.frames} frames, {summary.seconds:.2f} s)")
            if summary.turns_without_video:
                print(f"           no video frames for turns {summary.turns_without_video}")
    for event in recorder.events:
        kind = event["type"]
        if kind == "transcript.final":
            print(f"you:       {event['text']}")
        elif kind == "response.done":
            print(f"assistant: {event['text']}  [{event['status']}]")
        elif kind == "response.interrupted":
            print(f"           (interrupted; heard: {event['heard_text']!r})")
        elif kind == "response.audio.paused":
            print(f"           (paused after {event['played_ms']} ms)")
        elif kind == "response.audio.resumed":
            print("           (resumed)")
        elif kind == "response.audio.played":
            print("           (played to the end)")
        elif kind == "error":
            print(f"error {event['code']}: {event['message']}", file=sys.stderr)
        elif kind == "client.timeout":
            print(f"no reply in time for {event['file']}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
