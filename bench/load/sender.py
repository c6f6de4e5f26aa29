"""The fixed-rate webhook sender: open loop, latency from each request's scheduled time.

Run by ``bench.load`` as a process of its own (``python -m bench.load.sender
SPEC OUT``), so that nothing else on the client side (the fakes, the
readers, the slow clients) shares its interpreter or its event loop.

How a request is timed:

* The bodies and their ``X-Twilio-Signature`` come pre-signed in SPEC.
  Request ``i`` is *scheduled* at ``start + i / rate`` on the event loop's
  monotonic clock, whatever happened to the requests before it: the sender
  never waits for an answer before sending the next one (open loop).
* At its scheduled time the request is handed to its own task on an aiohttp
  session whose pool has no connection limit: when every kept-alive
  connection is busy it opens another, so the client itself never queues a
  request behind another.
* Its latency is *answer fully read* minus *scheduled time*. A server that
  stalls for a second therefore shows a second of latency on every request
  scheduled in that second, not only on the few that were in flight
  (coordinated omission is not hidden).
* A request with no answer within Twilio's 15 seconds (or whose connection
  failed) counts as unanswered, and sorts above every answered one in the
  percentiles: a p99 that falls among them reads "no answer".
* How late each request actually left is kept too: *request headers
  written* minus *scheduled time* (aiohttp's ``on_request_headers_sent``),
  and the report shows its p99 and maximum, so a client side that cannot
  keep the schedule is visible rather than mistaken for the server.

Before the schedule starts, a few warm-up requests (their own RecordingSids,
not counted) are sent one at a time, so the run does not measure the
connections' first handshakes; the first that gets no answer within 2 s
ends the warm-up. Then it prints ``start``. OUT gets one JSON object: per request its
scheduled offset, send lag, latency (``null`` when unanswered) and status
(an HTTP status, or the name of the client error).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp

# Twilio gives up on a callback not answered within 15 seconds.
TIMEOUT = 15.0
# Below gunicorn's 2 s keep-alive: the client retires an idle connection before the server
# closes it, so no request goes out on a connection that is being closed.
KEEPALIVE = 1.5
FORM = "application/x-www-form-urlencoded"
WARM_UP_TIMEOUT = 2.0


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    url: str = spec["url"]
    rate: float = spec["rate"]
    warm_up: list[list[str]] = spec["warm_up"]
    timed: list[list[str]] = spec["timed"]
    loop = asyncio.get_running_loop()
    headers_sent: dict[int, float] = {}

    async def on_headers_sent(session: aiohttp.ClientSession, context: SimpleNamespace, params: Any) -> None:
        index = (context.trace_request_ctx or {}).get("i")
        if index is not None:
            headers_sent[index] = loop.time()

    trace = aiohttp.TraceConfig()
    trace.on_request_headers_sent.append(on_headers_sent)
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)
    results: list[list[Any]] = [[] for _ in timed]
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        trace_configs=[trace],
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={"User-Agent": "TwilioProxy/1.1"},
    ) as session:
        warm_statuses: list[int | str] = []
        for body, signature in warm_up:
            try:
                async with session.post(
                    url,
                    data=body.encode(),
                    headers={"Content-Type": FORM, "X-Twilio-Signature": signature},
                    timeout=aiohttp.ClientTimeout(total=WARM_UP_TIMEOUT),
                ) as answer:
                    await answer.read()
                    warm_statuses.append(answer.status)
            except (aiohttp.ClientError, OSError, TimeoutError) as error:
                warm_statuses.append(type(error).__name__)
                break  # a server that does not answer now is what the run will measure

        encoded = [(body.encode(), signature) for body, signature in timed]
        start = loop.time() + 0.05
        print("start", flush=True)  # bench.load starts counting the other clients' requests here

        async def send(i: int, due: float, body: bytes, signature: str) -> None:
            status: int | str
            try:
                async with session.post(
                    url,
                    data=body,
                    headers={"Content-Type": FORM, "X-Twilio-Signature": signature},
                    trace_request_ctx={"i": i},
                ) as answer:
                    await answer.read()
                    status = answer.status
                latency: float | None = loop.time() - due
            except TimeoutError:
                status, latency = "timeout", None
            except (aiohttp.ClientError, OSError) as error:
                status, latency = type(error).__name__, None
            left = headers_sent.get(i)
            lag = None if left is None else left - due
            results[i] = [due - start, lag, latency, status]

        tasks = []
        for i, (body, signature) in enumerate(encoded):
            due = start + i / rate
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            tasks.append(asyncio.create_task(send(i, due, body, signature)))
        sent_all = loop.time() - start
        await asyncio.gather(*tasks)
        finished = loop.time() - start
    return {
        "rate": rate,
        "warm_up_statuses": warm_statuses,
        "schedule_seconds": (len(timed) - 1) / rate if timed else 0.0,
        "sent_all_after": sent_all,
        "finished_after": finished,
        "requests": results,
    }


def main(argv: list[str]) -> int:
    spec_path, out_path = Path(argv[0]), Path(argv[1])
    spec = json.loads(spec_path.read_text())
    result = asyncio.run(run(spec))
    out_path.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
