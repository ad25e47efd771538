"""A hostile participant in its own process (started by ``_wire.HostileProcess``).

It joins with ``$HOSTILE_TOKEN`` at ``$HOSTILE_URL``, prints ``joined``, waits
for a ``go`` line on stdin, does what ``$HOSTILE_MODE`` says to
``$HOSTILE_DESTINATION`` (everyone when empty) on ``$HOSTILE_TOPIC``, prints
``sent <count> <seconds>``, and leaves when stdin closes:

- ``big-text``: one text stream of ``$HOSTILE_SIZE`` bytes on each of the
  comma-separated topics, sent whole (the SDK compresses it and declares its
  size in the header);
- ``slow-text``: one text stream of ``$HOSTILE_SIZE`` bytes written in 64 KiB
  pieces through a stream writer, with no size declared, shaped like an
  agent's transcript (segment ``SG_big``, final in the trailer);
- ``flood``: ``$HOSTILE_COUNT`` tiny text streams, as fast as the SDK sends them.

Running apart from the test keeps what the sender allocates out of the
receiver's memory figures.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from livekit import rtc


async def main() -> None:
    room = rtc.Room()
    await room.connect(os.environ["HOSTILE_URL"], os.environ["HOSTILE_TOKEN"])
    print("joined", flush=True)
    await asyncio.to_thread(sys.stdin.readline)  # "go"
    mode = os.environ["HOSTILE_MODE"]
    topic = os.environ["HOSTILE_TOPIC"]
    size = int(os.environ.get("HOSTILE_SIZE") or 0)
    count = int(os.environ.get("HOSTILE_COUNT") or 0)
    destination = [os.environ["HOSTILE_DESTINATION"]] if os.environ.get("HOSTILE_DESTINATION") else None
    local = room.local_participant
    started = time.monotonic()
    sent = 0
    if mode == "big-text":
        text = "a" * size
        topics = topic.split(",")
        await asyncio.gather(*(local.send_text(text, topic=t, destination_identities=destination) for t in topics))
        sent = len(topics)
    elif mode == "slow-text":  # shaped like an agent's transcript: final only in the trailer
        writer = await local.stream_text(
            topic=topic,
            destination_identities=destination,
            attributes={"lk.segment_id": "SG_big", "lk.transcription_final": "false"},
        )
        piece = "b" * 65536
        written = 0
        while written < size:
            await writer.write(piece[: size - written])
            written += min(len(piece), size - written)
        await writer.aclose(attributes={"lk.transcription_final": "true"})
        sent = 1
    elif mode == "flood":
        batch = 100
        for start in range(0, count, batch):
            results = await asyncio.gather(
                *(
                    local.send_text(f"spam {n}", topic=topic, destination_identities=destination)
                    for n in range(start, min(count, start + batch))
                ),
                return_exceptions=True,
            )
            sent += sum(1 for r in results if not isinstance(r, BaseException))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(f"sent {sent} {time.monotonic() - started:.3f}", flush=True)
    await asyncio.to_thread(sys.stdin.read)  # until stdin closes
    await room.disconnect()


if __name__ == "__main__":
    asyncio.run(main())
