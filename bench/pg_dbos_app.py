"""The DBOS Transact side of bench/pg.py, run by the DBOS virtualenv's Python (never wfrun's).

    python pg_dbos_app.py describe                  # its version and settings, as JSON
    python pg_dbos_app.py steps URL SCHEMA N        # one workflow of N trivial steps; prints JSON
    python pg_dbos_app.py enqueue URL SCHEMA COUNT  # COUNT one-step workflows, delayed 1 s
    python pg_dbos_app.py worker URL SCHEMA         # an executor of the queue until SIGTERM

URL is the DBOS system database, SCHEMA the schema of its tables there (`dbos_system_schema`).
The queue's settings (QUEUE_SETTINGS) are what bench/pg.py reports with the figures.
"""

# mypy: ignore-errors
# (dbos is installed in the DBOS virtualenv only; this file never runs under wfrun's)

from __future__ import annotations

import json
import signal
import sys
import threading
import time

from dbos import DBOS

QUEUE = "bench"
QUEUE_SETTINGS = {"worker_concurrency": 50, "polling_interval_sec": 0.1}
DELAY_S = 1.0  # each enqueued workflow waits this long (DELAYED) before it may be dequeued
BATCH = 1000  # workflows enqueued per transaction (a fixture, not a measurement)


@DBOS.step(name="noop")
def noop(i: int) -> int:
    """A trivial step."""
    return i


@DBOS.workflow(name="chain")
def chain(n: int) -> int:
    """A workflow of `n` trivial steps."""
    total = 0
    for i in range(n):
        total += noop(i)
    return total


@DBOS.workflow(name="one_step")
def one_step(i: int) -> int:
    """A workflow of one trivial step (what the queue runs)."""
    return noop(i)


def _configure(url: str, schema: str) -> None:
    DBOS(config={"name": "wfrun_bench", "system_database_url": url, "dbos_system_schema": schema,
                  "log_level": "WARNING"})


def steps(url: str, schema: str, n: int) -> None:
    """Launch, run one workflow of `n` steps to its end, and print how long each part took."""
    _configure(url, schema)
    t0 = time.perf_counter()
    DBOS.launch()
    t1 = time.perf_counter()
    result = chain(n)
    t2 = time.perf_counter()
    DBOS.destroy()
    assert result == n * (n - 1) // 2, result
    print(json.dumps({"launch_s": t1 - t0, "workflow_s": t2 - t1}))


def enqueue(url: str, schema: str, count: int) -> None:
    """Create DBOS's tables (a launch), register the queue and enqueue `count` runs of
    `one_step`, each delayed DELAY_S (nothing executes them until a worker starts)."""
    import sqlalchemy as sa
    from dbos import DBOSClient

    _configure(url, schema)
    DBOS.launch()
    DBOS.destroy()
    client = DBOSClient(system_database_url=url, dbos_system_schema=schema)
    client.register_queue(QUEUE, **QUEUE_SETTINGS)
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    for start in range(0, count, BATCH):
        with engine.begin() as conn:
            for i in range(start, min(count, start + BATCH)):
                client.enqueue_in_transaction(
                    conn, {"queue_name": QUEUE, "workflow_name": "one_step",
                           "workflow_id": f"q{i:06d}", "delay_seconds": DELAY_S}, i)
    engine.dispose()
    client.destroy()


def worker(url: str, schema: str) -> None:
    """An executor: launch (it dequeues from the queue) and run until SIGTERM."""
    _configure(url, schema)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    DBOS.launch()
    stop.wait()
    DBOS.destroy()


def main() -> None:
    """Dispatch on the first argument."""
    command, args = sys.argv[1], sys.argv[2:]
    if command == "describe":
        from importlib.metadata import version

        print(json.dumps({"version": version("dbos"), "queue": QUEUE_SETTINGS, "delay_s": DELAY_S,
                          "enqueue_batch": BATCH}))
    elif command == "steps":
        steps(args[0], args[1], int(args[2]))
    elif command == "enqueue":
        enqueue(args[0], args[1], int(args[2]))
    elif command == "worker":
        worker(args[0], args[1])
    else:
        sys.exit(f"unknown command {command!r}")


if __name__ == "__main__":
    main()
