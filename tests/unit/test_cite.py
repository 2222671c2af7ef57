"""A command inside a sentence is set off so that it can be copied as it stands: the marks
around it never clash with its own shell quoting (a store URL, a directory with a space)."""

from __future__ import annotations

import shlex

import pytest

from wfrun._cite import cited


@pytest.mark.parametrize(("command", "said"), [
    ("wfrun tick", "'wfrun tick'"),
    ("wfrun --store 'postgresql://wf@db/wf?options=-csearch_path%3Dx' tick",
     "\"wfrun --store 'postgresql://wf@db/wf?options=-csearch_path%3Dx' tick\""),
    (f"wfrun --state-dir {shlex.quote(chr(39).join(['it', 's']))} tick",
     "wfrun --state-dir 'it'\"'\"'s' tick"),  # both kinds of quote inside: no marks around it
])
def test_a_command_is_set_off_without_clashing_quotes(command: str, said: str) -> None:
    assert cited(command) == said
    inner = said[1:-1] if said[0] == said[-1] and said[0] in "'\"" else said
    assert inner == command and shlex.split(inner)[-1] == "tick"
