"""A command set off inside a sentence (`'wfrun tick' fires it`) so that it can be copied as
it stands: its own shell quoting (a store URL, a directory) never clashes with the marks around
it."""

from __future__ import annotations


def cited(command: str) -> str:
    """`command` in single quotes; in double quotes when it holds a single quote of its own
    (`"wfrun --store 'postgresql://db/wf?options=...' tick"`); bare when it holds both."""
    if "'" not in command:
        return f"'{command}'"
    if '"' not in command:
        return f'"{command}"'
    return command
