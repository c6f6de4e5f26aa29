"""The queue consumer's baseline: a bare Huey app with one task, on SQLite.

Run as ``huey_consumer bench.pipeline.bare_huey.huey`` (the queue file is
``$BENCH_BARE_HUEY_FILE``); it imports nothing of the project.
"""

import os

from huey import SqliteHuey

huey = SqliteHuey("bench-bare", filename=os.environ.get("BENCH_BARE_HUEY_FILE", "bench-bare-huey.db"))


@huey.task()
def echo(n: int) -> int:
    return n
