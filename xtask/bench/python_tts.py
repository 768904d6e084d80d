"""Sequential synchronous TTS through the vendor's official Python SDK (`smallestai`).

The Python side of `cargo xtask bench python`; `tests/src/bin/tts_bench_client.rs` is
the Rust side, and both print the same line:

    requests=2000 cpu_ns=... wall_ns=... peak_rss_kib=... audio_bytes=...

Usage (the key comes from SMALLEST_API_KEY, as the SDK reads it by default):

    python python_tts.py --base-url URL --requests N [--warmup N] [--text TEXT]
                         [--voice VOICE] [--sample-rate HZ]
"""

import argparse
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--text", default="Hello from Waves TTS.")
    parser.add_argument("--voice", default="meher")
    parser.add_argument("--sample-rate", type=int, default=24000)
    args = parser.parse_args()

    # Imported here, after argument parsing, like an application would at start-up:
    # the SDK's import cost lands in the peak RSS (it is part of what a user pays),
    # not in the per-request CPU time.
    from smallestai import SmallestAI
    from smallestai.environment import SmallestAIEnvironment

    # The SDK has no `base_url` argument: every API family takes its URL from an
    # environment object (`SmallestAIEnvironment.PRODUCTION` by default). TTS joins
    # `environment.waves` with `waves/v1/tts`, so the emulator's base URL goes there;
    # the other families point at the emulator too, so nothing can leave the machine.
    base = args.base_url.rstrip("/")
    environment = SmallestAIEnvironment(
        atoms=f"{base}/atoms/v1",
        waves=base,
        waves_ws=base.replace("http", "ws", 1),
        payment=base,
    )
    # The sync client as the SDK's README shows it, with its defaults (2 retries,
    # 60 s timeout), as our Rust clients run with theirs.
    client = SmallestAI(environment=environment)

    expected = None

    def once() -> None:
        nonlocal expected
        # `synthesize_tts` (POST /waves/v1/tts) streams the audio in chunks; joining
        # them is what the SDK's own `synthesize_bytes` helper does.
        audio = b"".join(
            client.waves.synthesize_tts(
                text=args.text,
                voice_id=args.voice,
                sample_rate=args.sample_rate,
                output_format="wav",
            )
        )
        if expected is None and audio:
            expected = len(audio)
        if len(audio) != expected:
            raise RuntimeError(f"unexpected audio length {len(audio)} ({expected})")

    # Same warm-up as the Rust client: a pooled connection and steady-state caches.
    for _ in range(args.warmup):
        once()
    # `process_time_ns` is CLOCK_PROCESS_CPUTIME_ID: user + system time of every
    # thread of this process, the counter the Rust client reads and the one
    # `resource.getrusage(RUSAGE_SELF)` reports with microsecond resolution.
    cpu_before = time.process_time_ns()
    wall_before = time.perf_counter_ns()
    for _ in range(args.requests):
        once()
    wall_ns = time.perf_counter_ns() - wall_before
    cpu_ns = time.process_time_ns() - cpu_before

    print(
        f"requests={args.requests} cpu_ns={cpu_ns} wall_ns={wall_ns} "
        f"peak_rss_kib={peak_rss_kib()} audio_bytes={expected or 0}"
    )
    return 0


def peak_rss_kib() -> int:
    """`VmHWM` of /proc/self/status: peak resident set size, in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


if __name__ == "__main__":
    sys.exit(main())
