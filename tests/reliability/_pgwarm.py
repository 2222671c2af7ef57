"""The reliability suite's pre-imported launcher (`_warm.py`), with the PostgreSQL driver and
store imported too, so that a forked `wfrun --store postgresql://...` command starts warm."""

from __future__ import annotations

import gc
import os

import _warm  # (run as a script: this directory is on sys.path)
import psycopg  # noqa: F401
import psycopg_pool  # noqa: F401

import wfrun.store.postgres.store  # noqa: F401

if __name__ == "__main__":
    gc.freeze()  # children share the warm heap instead of copying it page by page
    try:
        _warm.serve()
    finally:
        os.rmdir(_warm._OUT_DIR)
