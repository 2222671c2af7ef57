"""State stores: the interface (`abc`), its implementations (`file`, `postgres`), `open_store`."""

from wfrun.store._open import open_store
from wfrun.store.abc import ExecutionClaim, Store

__all__ = ["ExecutionClaim", "Store", "open_store"]
