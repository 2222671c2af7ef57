"""`format` in a schema is checked for the formats docs/writing-workflows.md ("Schemas") lists,
whatever optional packages are installed: jsonschema checks `date-time`, `time`, `hostname` and
`uri` only with packages wfrun does not require, so wfrun checks those itself (wfrun._formats).
A value of the wrong format is refused, as a sentence saying what the field takes, before
anything is written."""

from __future__ import annotations

import json

import pytest
from conftest import Project

from wfrun import _formats

FORM = """
    steps:
      - id: form
        wait: true
        resume_schema:
          type: object
          required: [v]
          properties: {{v: {{type: string, format: {format}}}}}
"""

# format: (values it takes, values it refuses, what a refusal says the field must be)
CASES = {
    "date-time": (["2026-12-03T09:00:00Z", "2026-12-03t09:00:00.5+01:30", "1998-12-31T23:59:60Z",
                   "1998-12-31T15:59:60-08:00"],
                  ["not a date", "2026-12-03", "2026-12-03T09:00:00", "2026-02-30T09:00:00Z",
                   "2026-12-03T24:00:00Z", "2026-12-03 09:00:00Z", "2026-12-03T09:00:00+01",
                   "2026-12-03T22:59:60Z", "2026-12-03T09:00:00Z\n"],
                  "a date-time (RFC 3339, such as 2026-12-03T09:00:00Z)"),
    "time": (["09:00:00Z", "23:20:50.52+02:00", "23:59:60Z", "01:29:60+01:30"],
             ["09:00", "09:00:00", "9:00:00Z", "09:60:00Z", "23:58:60Z", "01:02:03+24:00"],
             "a time with its offset (RFC 3339, such as 09:00:00Z)"),
    "hostname": (["example.com", "localhost", "a--b.example", "xn--nw2a.xn--j6w193g", "1host"],
                 ["", "-a.com", "a-.com", "host_name", "example.", "a..b", "ex ample.com",
                  "a" * 64 + ".com", "xn--X", "ab--c.com", "\u212aelvin.com"],
                 "a host name (such as example.com)"),
    "uri": (["https://example.com/a?b=c#d", "mailto:ann@example.com", "urn:isbn:0451450523",
             "ldap://[2001:db8::7]/c=GB?objectClass?one", "http://a.b/%20"],
            ["/relative", "example.com", "http://a b/", "https://example.org/foo<>", "1http://a",
             "http://a/%zz", "http://[::ffff:01.2.3.4]/", "http://a:xy/"],
            "a URI with its scheme (such as https://example.com/path)"),
    "uri-reference": (["/path?q=1", "", "#top", "../a/b", "https://example.com/", "./a:b"],
                      ["a b", "\\\\share", "1:b", "/a\"b", "/%2"],
                      "a URI or a relative reference (such as /path?q=1)"),
}


@pytest.mark.parametrize("fmt", sorted(CASES))
def test_a_format_is_checked_at_resume(project: Project, fmt: str) -> None:
    good, bad, words = CASES[fmt]
    project.workflow("form", FORM.format(format=fmt))
    run_id = project.json("start", "form")["run_id"]
    before = project.snapshots()
    for value in bad:
        out = project.run("resume", run_id, "--data", json.dumps({"v": value}))
        assert out.code == 2, (value, out.stdout)
        shown = json.dumps(value, ensure_ascii=False)  # as the message quotes it (cut at 40)
        assert out.stderr.strip() == ("error: resume data for step 'form' is not valid: "
                                      f'"v" must be {words}, not '
                                      + (shown if len(shown) <= 40 else shown[:39] + "…")), value
        assert project.snapshots() == before
    for value in good:  # each accepted by a run of its own
        assert project.run("start", "form", "--run-id", f"r{good.index(value)}").code == 0
        out = project.run("resume", f"r{good.index(value)}", "--data", json.dumps({"v": value}))
        assert out.code == 0, (value, out.stderr)


def test_the_documented_sample_of_each_checked_format_passes() -> None:
    from wfrun._schema import format_checker

    checker = format_checker()
    for name, sample in _formats.SAMPLES.items():
        assert checker.conforms(sample, name), name
    assert set(_formats.WORDS) == set(_formats.SAMPLES) == set(checker.checkers) | (
        {"idn-hostname"} - set(checker.checkers))


def test_other_formats_are_annotations_and_jsonschema_is_left_as_it_was(project: Project) -> None:
    from jsonschema import Draft202012Validator

    project.workflow("form", FORM.format(format="iri"))
    run_id = project.json("start", "form")["run_id"]
    assert project.run("resume", run_id, "--data", '{"v": "not an iri"}').code == 0
    assert "date-time" not in Draft202012Validator.FORMAT_CHECKER.checkers or \
        Draft202012Validator.FORMAT_CHECKER.checkers["date-time"][0] is not _formats.is_date_time
