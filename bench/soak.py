"""A 30-minute mixed household run on the default models: the hub's memory over time (opt-in).

    python -m bench soak                    # 30 minutes
    SOAK_MINUTES=5 python -m bench soak     # shorter, for a quick look

Not part of the default ``make bench``: it takes half an hour. One hub process (as `make run`),
four simulated devices, each asking the bench set's questions in turn with pauses of 1–8 s: auto
and push-to-talk turns, now and then a barge-in (abort while the answer plays), now and then two or
more devices at once. The hub's RSS is sampled every 5 s; reported: ready, the first and last
minute's median, the peak, and the growth per 10 minutes (a least-squares line through the samples
after the first two minutes, when the caches have filled).
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import time
from xiaozhi_hub.simulator import SimulatedDevice

from .common import RssPeak, hub_metrics, hub_process, hub_status
from .pipeline import BENCH_SET, Round, TurnResult, _ask, config, round_rows, speech_set

DEVICES = 4


async def _device(url: str, index: int, speech: list[bytes], until: float, turns: list[TurnResult],
                  counts: collections.Counter[str], rng: random.Random) -> None:
    async with SimulatedDevice(url, mcp=False) as dev:
        n = 0
        while time.monotonic() < until:
            k = rng.randrange(len(speech))
            roll = rng.random()
            try:
                if roll < 0.1:                       # barge-in: abort half a second into the answer
                    await dev.run_turn(speech[k], mode="auto", timeout=120, abort_after_ms=500)
                    counts["aborts"] += 1
                elif roll < 0.3:                     # push-to-talk
                    await dev.run_turn(speech[k], mode="manual", timeout=120)
                    counts["manual"] += 1
                else:
                    turns.append(await _ask(dev, index, n, speech[k], BENCH_SET[k][1], 0.0))
            except Exception as err:  # a failed turn is counted, and the run goes on
                counts["errors"] += 1
                counts[f"error: {type(err).__name__}"] += 1
            n += 1
            await asyncio.sleep(rng.uniform(1.0, 8.0))


def _slope_mb_per_10min(samples: list[tuple[float, int]], skip_s: float) -> float:
    if not samples:
        return 0.0
    t0 = samples[0][0]
    pts = [(t - t0, kb / 1024) for t, kb in samples if t - t0 >= skip_s]
    if len(pts) < 3:
        return 0.0
    mx = sum(t for t, _ in pts) / len(pts)
    my = sum(v for _, v in pts) / len(pts)
    var = sum((t - mx) ** 2 for t, _ in pts)
    return 0.0 if var == 0 else sum((t - mx) * (v - my) for t, v in pts) / var * 600


def _median(values: list[float]) -> float:
    values = sorted(values)
    return values[len(values) // 2] if values else 0.0


async def run() -> list[tuple[str, str, str]]:
    minutes = float(os.environ.get("SOAK_MINUTES", "30"))
    speech = await speech_set(tuple(text for text, _ in BENCH_SET))
    turns: list[TurnResult] = []
    counts: collections.Counter[str] = collections.Counter()
    with hub_process(config(), ready_timeout=180) as proc:
        ready_mb = proc.rss_kb() / 1024
        until = time.monotonic() + minutes * 60
        async with RssPeak(proc.proc.pid, period=5.0) as rss:
            await asyncio.gather(*(_device(proc.ws_url, i, speech, until, turns, counts, random.Random(i))
                                   for i in range(DEVICES)))
        samples = rss.samples
        start, end = samples[0][0], samples[-1][0]
        first = [kb / 1024 for t, kb in samples if t - start <= 60]
        last = [kb / 1024 for t, kb in samples if end - t <= 60]
        result = Round(DEVICES, turns=turns, status=hub_status(proc), metrics=hub_metrics(proc),
                       rss_ready_mb=ready_mb, rss_peak_mb=rss.peak_kb / 1024)
    rows = [
        (f"soak: {minutes:.0f} minutes, {DEVICES} devices, turns measured / push-to-talk / barge-ins / failed",
         f"{len(turns)} / {counts['manual']} / {counts['aborts']} / {counts['errors']}", "0 failed"),
        ("soak: hub RSS ready / first minute / last minute / peak",
         f"{ready_mb:.0f} / {_median(first):.0f} / {_median(last):.0f} / {rss.peak_kb / 1024:.0f} MB", "<= 900 MB"),
        ("soak: hub RSS growth after the first 2 minutes", f"{_slope_mb_per_10min(samples, 120):+.1f} MB per 10 min", ""),
    ]
    rows += [r for r in round_rows("soak", result) if "first turn after start-up" not in r[0]]
    errors = {k: v for k, v in counts.items() if k.startswith("error: ")}
    if errors:
        rows.append(("soak: failed turns by error", ", ".join(f"{k[7:]} {v}" for k, v in errors.items()), ""))
    return rows
