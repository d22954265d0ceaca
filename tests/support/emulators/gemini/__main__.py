"""The Gemini emulator in its own process (benchmarks): ``cd tests && python -m
support.emulators.gemini --port 0 [--latency S] [--auto-complete]`` prints the base URL as the
first stdout line and serves until SIGINT/SIGTERM, then prints its counters on stderr."""

from __future__ import annotations

import argparse
import sys

from support.emulators.gemini.emulator import GeminiEmulator
from support.emulators.gemini.wire import BATCH_MODES
from support.emulators.loopback import serve_until_signalled


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a fake Gemini Developer API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per generateContent call")
    parser.add_argument("--latency-per-item", type=float, default=0.0, help="seconds more per flag")
    parser.add_argument("--requests-per-minute", type=int, default=None, help="429 beyond this per window")
    parser.add_argument("--rate-window", type=float, default=60.0, help="seconds (default 60)")
    parser.add_argument(
        "--auto-complete",
        action="store_true",
        help="batch jobs finish by themselves (see --complete-after-*)",
    )
    parser.add_argument("--batch-mode", choices=BATCH_MODES, default=None, help="overrides --auto-complete")
    parser.add_argument("--complete-after-polls", type=int, default=2)
    parser.add_argument("--complete-after-seconds", type=float, default=None)
    parser.add_argument("--api-key", action="append", default=None, help="accepted key (repeatable)")
    parser.add_argument("--invalid-key", action="append", default=None)
    parser.add_argument("--verbose", action="store_true", help="log requests to stderr")
    args = parser.parse_args(argv)

    mode = args.batch_mode or ("auto" if args.auto_complete else "manual")
    emulator = GeminiEmulator(
        host=args.host,
        port=args.port,
        latency=args.latency,
        latency_per_item=args.latency_per_item,
        requests_per_minute=args.requests_per_minute,
        rate_window=args.rate_window,
        batch_mode=mode,
        complete_after_polls=args.complete_after_polls,
        complete_after_seconds=args.complete_after_seconds,
        api_keys=args.api_key,
        invalid_api_keys=args.invalid_key or ("invalid",),
        verbose=args.verbose,
    )
    serve_until_signalled(emulator)
    return 0


if __name__ == "__main__":
    sys.exit(main())
