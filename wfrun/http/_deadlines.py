"""The connections' deadlines: one watchdog thread cuts the read side of a connection whose
client is too slow, so that a read blocked on it returns at once."""

from __future__ import annotations

import threading
import time
from typing import Protocol

from wfrun._threads import own_thread


class Expiring(Protocol):
    """A connection's handler, told when its deadline passed."""

    def expire(self) -> None: ...


class Deadlines:
    """One watchdog thread for every connection: when a connection's deadline passes, its read
    side is shut down, so a read blocked on a client that trickles returns at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._due: dict[int, tuple[float, Expiring]] = {}
        self._wake = threading.Event()
        self._stopped = False
        self._thread = threading.Thread(target=self._watch, name="wfrun-deadlines", daemon=True)
        self._thread.start()

    def arm(self, handler: Expiring, seconds: float) -> None:
        """Cut `handler`'s connection `seconds` from now unless disarmed (or re-armed) first."""
        with self._lock:
            self._due[id(handler)] = (time.monotonic() + seconds, handler)
        self._wake.set()

    def disarm(self, handler: Expiring) -> None:
        """Forget `handler`'s deadline."""
        with self._lock:
            self._due.pop(id(handler), None)

    def stop(self) -> None:
        """End the watchdog thread."""
        self._stopped = True
        self._wake.set()
        self._thread.join(5)

    def _watch(self) -> None:
        own_thread()
        while not self._stopped:
            now = time.monotonic()
            with self._lock:
                expired = [h for due, h in self._due.values() if due <= now]
                for handler in expired:
                    del self._due[id(handler)]
                upcoming = min((due for due, _ in self._due.values()), default=now + 1.0)
            for handler in expired:
                handler.expire()
            self._wake.wait(max(0.0, min(upcoming - now, 1.0)))
            self._wake.clear()
