"""`wfrun serve`: the HTTP endpoint behind resume and cancel URLs (no typer, no rich here)."""

from wfrun.http._server import WfrunServer

__all__ = ["WfrunServer"]
