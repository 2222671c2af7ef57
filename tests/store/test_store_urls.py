"""Store URLs (SPEC §10): `file:PATH` or a bare path, `postgresql://`; anything else refused
with a sentence saying what to use, before any store is opened."""

from __future__ import annotations

import pytest
from conftest import Project

from wfrun.errors import UsageError
from wfrun.store._urls import public_url, store_kind


@pytest.mark.parametrize(("url", "kind", "where"), [
    ("file:./.wfstate", "file", "./.wfstate"),
    ("file:///srv/app/.wfstate", "file", "/srv/app/.wfstate"),
    ("/srv/app/.wfstate", "file", "/srv/app/.wfstate"),
    ("relative/dir", "file", "relative/dir"),
    ("file:./a:b", "file", "./a:b"),
    ("postgresql://wf@db:5432/prod", "postgresql", "postgresql://wf@db:5432/prod"),
    ("postgres://wf@db/prod", "postgresql", "postgres://wf@db/prod"),
])
def test_store_kinds(url: str, kind: str, where: str) -> None:
    assert store_kind(url) == (kind, where)


@pytest.mark.parametrize(("url", "says"), [
    ("", "empty"),
    ("memory:", "memory store lives in one process"),
    ("sqlite:runs.db", "scheme 'sqlite'"),
    ("mysql://u@h/db", "scheme 'mysql'"),
    ("file://otherhost/x", "names another host"),
    ("file:", "names no directory"),
    ("postgresql:/db?password=s3cret", "has scheme 'postgresql'"),
])
def test_urls_without_a_store_are_refused(url: str, says: str) -> None:
    with pytest.raises(UsageError) as raised:
        store_kind(url)
    assert says in raised.value.message
    assert "s3cret" not in raised.value.message


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://wf:s3cret@db:5432/prod", "postgresql://wf@db:5432/prod"),
    ("postgresql://:s3cret@db/prod", "postgresql://db/prod"),
    ("postgresql://wf:s3?c#r:et@db/prod", "postgresql://wf@db/prod"),  # as libpq reads it
    ("postgresql://wf@db/prod?password=s3cret&options=-csearch_path%3Dx",
     "postgresql://wf@db/prod?options=-csearch_path%3Dx"),
    ("postgresql:///prod?host=/run/pg&password=s3cret", "postgresql:///prod?host=/run/pg"),
    ("postgres://db/prod?sslmode=require&sslpassword=s3cret&pass%77ord=s3cret&passfile=/p",
     "postgres://db/prod?sslmode=require&passfile=/p"),
    ("postgresql://wf:s3cret@db:notaport/prod?password=s3cret", "postgresql://wf@db:notaport/prod"),
    ("postgresql://wf@db/prod?sslmode=require", "postgresql://wf@db/prod?sslmode=require"),
    ("file:./a?password=b", "file:./a?password=b"),  # a path, not a URL with parameters
    ("postgresql:/prod?password=s3cret", "postgresql:/prod"),  # refused, and named
])
def test_a_password_is_never_shown(url: str, shown: str) -> None:
    assert public_url(url) == shown


def test_the_cli_refuses_a_memory_store_with_exit_2(project: Project) -> None:
    out = project.run("--store", "memory:", "list")
    assert out.code == 2, (out.stdout, out.stderr)
    assert "memory store lives in one process" in out.stderr and "Traceback" not in out.stderr
