"""State stores: the interface (`abc`) and its implementations (`file`)."""

from wfrun.store.abc import ExecutionClaim, Store

__all__ = ["ExecutionClaim", "Store"]
