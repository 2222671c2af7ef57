"""The engine over every store, on a fake clock: `engine` is wfrun's `Engine` over the memory,
file or PostgreSQL store (tests/_stores.py) with a `FakeClock` at `START` that only the test
moves, and the small workflows (`FLOWS`) the unit tests drive, written once per session."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import _stores
import pytest

from wfrun.clock import FakeClock
from wfrun.engine import Engine

START = "2026-01-05T09:00:00.000Z"

_APPROVAL = """\
    name: {name}
    module: approval.py
    input_schema: {{type: object, required: [amount], properties: {{amount: {{type: number}}}}}}
    output: finish
    steps:
      - id: submit
      - id: approve
        wait: true
        timeout: 2d
        on_timeout: {on_timeout}
        resume_schema:
          type: object
          required: [approved]
          properties: {{approved: {{type: boolean}}}}
      - id: finish
    """

# name -> (manifest, step module or None); a manifest's module is NAME.py unless it says
FLOWS: dict[str, tuple[str, str | None]] = {
    "greet": ("""\
        name: greet
        input_schema: {type: object, required: [name], properties: {name: {type: string}}}
        output: shout
        steps:
          - id: hello
          - id: shout
        """, """\
        def hello(ctx):
            return {"greeting": "hello " + ctx.input["name"]}

        def shout(ctx):
            return ctx.steps["hello"].output["greeting"].upper()
        """),
    "approval": (_APPROVAL.format(name="approval", on_timeout="cancel"), """\
        def submit(ctx):
            return {"amount": ctx.input["amount"]}

        def finish(ctx):
            data = ctx.steps["approve"].resume_data
            return {"amount": ctx.steps["submit"].output["amount"],
                    "approved": None if data is None else data["approved"]}
        """),
    "approval-resume": (_APPROVAL.format(name="approval-resume", on_timeout="resume"), None),
    "approval-fail": (_APPROVAL.format(name="approval-fail", on_timeout="fail"), None),
    "poll": ("""\
        name: poll
        output: report
        steps:
          - id: poll
          - id: report
        """, """\
        def poll(ctx):
            polls = (ctx.run.context or {}).get("polls", 0) + 1
            if ctx.run.runs < 3:
                ctx.flow.rerun("10s", {"polls": polls}, 5)
            return {"polls": polls, "runs": ctx.run.runs}

        def report(ctx):
            return ctx.steps["poll"].output
        """),
    "nap": ("""\
        name: nap
        output: wake
        steps:
          - id: doze
          - id: delay
            sleep: 1h
          - id: wake
        """, """\
        def doze(ctx):
            return "zz"

        def wake(ctx):
            return {"woke": ctx.steps["doze"].output}
        """),
    "flaky": ("""\
        name: flaky
        steps:
          - id: call
            retry: {max_attempts: 3, delay: 30s, backoff: 2.0}
        """, """\
        def call(ctx):
            if ctx.run.runs < 3:
                raise ConnectionError(f"unavailable (attempt {ctx.run.runs})")
            return {"attempt": ctx.run.runs}
        """),
    "fragile": ("""\
        name: fragile
        input_schema: {type: object, required: [broken], properties: {broken: {type: string}}}
        steps:
          - id: prepare
          - id: work
        """, """\
        import os

        def prepare(ctx):
            return "ready"

        def work(ctx):
            if os.path.exists(ctx.input["broken"]):
                raise RuntimeError("the thing is broken")
            return "fixed"
        """),
    "fanout": ("""\
        name: fanout
        input_schema: {type: object, required: [items], properties: {items: {type: array}}}
        output: total
        steps:
          - id: split
          - id: double
            foreach: split
          - id: total
        """, """\
        def split(ctx):
            return ctx.input["items"]

        def double(ctx):
            return {"index": ctx.index, "double": ctx.item * 2}

        def total(ctx):
            return sum(entry["double"] for entry in ctx.steps["double"].output)
        """),
    "gates": ("""\
        name: gates
        steps:
          - id: hold
          - id: split
          - id: each
            foreach: split
          - id: pay
        """, """\
        def hold(ctx):
            ctx.flow.suspend()
            return "held"

        def split(ctx):
            return ["a", "b"]

        def each(ctx):
            ctx.flow.suspend()
            return ctx.item

        def pay(ctx):
            ctx.flow.wait_for_event("paid")
            return "paid"
        """),
    "parent": ("""\
        name: parent
        output: finish
        steps:
          - id: prepare
          - id: review
            workflow: child
            input_from: prepare
          - id: finish
        """, """\
        def prepare(ctx):
            return {"item": ctx.input.get("item", "book")}

        def finish(ctx):
            return {"reviewed": ctx.steps["review"].output}
        """),
    "child": ("""\
        name: child
        input_schema: {type: object, required: [item], properties: {item: {type: string}}}
        output: decide
        steps:
          - id: ask
            wait: true
            resume_schema: {type: object, required: [ok], properties: {ok: {type: boolean}}}
          - id: decide
        """, """\
        def decide(ctx):
            return {"item": ctx.input["item"], "ok": ctx.steps["ask"].resume_data["ok"]}
        """),
}


@pytest.fixture(scope="session")
def workflows_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workflows directory holding every workflow of FLOWS."""
    directory = tmp_path_factory.mktemp("workflows")
    for name, (manifest, module) in FLOWS.items():
        (directory / f"{name}.yaml").write_text(textwrap.dedent(manifest))
        if module is not None:
            (directory / f"{name}.py").write_text(textwrap.dedent(module))
    return directory


@pytest.fixture(params=_stores.KINDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[_stores.Backend]:
    """One store's storage, empty, whose leases expire by a fake clock at START."""
    with _stores.backend(request.param, tmp_path, FakeClock(START)) as made:
        yield made


@pytest.fixture
def engine(backend: _stores.Backend, workflows_dir: Path) -> Engine:
    """wfrun's engine over the backend's store, on its fake clock (`engine.clock.advance`)."""
    return Engine(backend.open(), backend.clock, workflows_dir=str(workflows_dir),
                  base_url="http://wfrun.test", command="wfrun")
