"""State stores: the interface (`abc`), its implementations (`file`, `postgres`), `open_store`,
store URLs, and copying the state of one store into another (`wfrun state copy`)."""

from wfrun.store._copy import CopyReport, copy_state
from wfrun.store._open import open_store
from wfrun.store._urls import public_url, store_kind
from wfrun.store.abc import ExecutionClaim, Store

__all__ = ["CopyReport", "ExecutionClaim", "Store", "copy_state", "open_store", "public_url",
           "store_kind"]
