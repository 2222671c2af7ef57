"""Issue 22 point 5: the approval page shows what is being approved, readably: the
description, the input and earlier outputs as fields (not JSON), times relative to the
server's clock, one button per action and no field repeating one."""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime, timedelta
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode

import pytest

from wfrun._textdata import query_data
from wfrun.http._forms import fields_for, form_data
from wfrun.http._pages import MAX_DEPTH, MAX_ITEMS, distance, readable_time, value_html

from .conftest import Server, http

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 12, 2, 4, 10, tzinfo=UTC)


def test_times_read_as_a_distance_from_the_servers_clock_and_a_date() -> None:
    assert readable_time("2026-12-09T01:26:00.000Z", NOW) == "in 6 days (9 Dec, 01:26 UTC)"
    assert readable_time("2026-12-02T02:10:59.999Z", NOW) == "1 hour 59 minutes ago (2 Dec, 02:10 UTC)"
    assert readable_time("2026-12-02T02:10:00Z", NOW) == "2 hours ago (2 Dec, 02:10 UTC)"
    assert readable_time("2026-12-03T09:40:00Z", NOW) == "in 1 day 5 hours (3 Dec, 09:40 UTC)"
    assert readable_time("2026-12-02T04:09:30Z", NOW) == "just now (2 Dec, 04:09 UTC)"
    assert readable_time("2026-12-02T04:10:30Z", NOW) == "in less than a minute (2 Dec, 04:10 UTC)"
    assert readable_time("2026-12-02T04:11:00Z", NOW) == "in 1 minute (2 Dec, 04:11 UTC)"
    assert readable_time("2027-01-05T00:00:00Z", NOW) == "in 33 days (5 Jan 2027, 00:00 UTC)"
    # another offset is the same instant, said in UTC; a naive time is taken as UTC
    assert readable_time("2026-12-02T05:10:00+01:00", NOW) == "just now (2 Dec, 04:10 UTC)"
    assert readable_time("2026-12-01T04:10:00", NOW) == "1 day ago (1 Dec, 04:10 UTC)"
    assert readable_time("soon", NOW) == "soon" and readable_time(None, NOW) is None
    assert readable_time("", NOW) is None


def test_distance_counts_whole_units_singular_and_plural() -> None:
    assert distance(timedelta(days=2, hours=23)) == "in 2 days"
    assert distance(-timedelta(hours=1)) == "1 hour ago"
    assert distance(-timedelta(minutes=5, seconds=59)) == "5 minutes ago"
    assert distance(timedelta(hours=1, seconds=30)) == "in 1 hour"


def test_values_read_as_fields_nested_ones_indented_all_escaped() -> None:
    html = value_html({"user": "ann", "amount": 42, "ok": True, "gone": None, "note": "",
                       "<b>key</b>": "<script>alert(1)</script>",
                       "items": [{"sku": "A-1", "qty": 2}], "tags": ["x", "y"], "empty": {}})
    assert html.startswith("<dl><dt>user</dt><dd><span class=\"v\">ann</span></dd>")
    assert "<dt>amount</dt><dd>42</dd>" in html and "<dt>ok</dt><dd>yes</dd>" in html
    assert '<dt>gone</dt><dd><span class="none">none</span></dd>' in html
    assert "<dt>&lt;b&gt;key&lt;/b&gt;</dt>" in html and "&lt;script&gt;alert(1)" in html
    assert "<script" not in html and "<b>" not in html
    assert ('<dt>items</dt><dd><ol class="list"><li><dl><dt>sku</dt>'
            '<dd><span class="v">A-1</span></dd><dt>qty</dt><dd>2</dd></dl></li></ol></dd>') in html
    assert '<ul class="list"><li><span class="v">x</span></li>' in html
    assert "{" not in html and '"' not in re.sub(r'class="[a-z]+"', "", html)  # no JSON


def test_long_and_deep_values_are_cut() -> None:
    many = value_html({f"k{i}": i for i in range(MAX_ITEMS + 7)})
    assert many.count("<dt>") == MAX_ITEMS + 1 and "7 more (see wfrun show)" in many
    deep: object = {"leaf": "<i>"}
    for _ in range(MAX_DEPTH + 1):
        deep = {"d": deep}
    shown = value_html(deep)
    assert shown.count("<dl>") == MAX_DEPTH
    assert '<code class="v">{&quot;d&quot;: {&quot;leaf&quot;: &quot;&lt;i&gt;&quot;}}</code>' in shown
    assert "cut: see wfrun show" in value_html("x" * 5000)


def use_expense_approval(server: Server) -> None:
    """Copy the `expense-approval` example into the server's project."""
    for suffix in (".yaml", ".py"):
        shutil.copy(REPO / "workflows" / f"expense-approval{suffix}",
                    server.project.workflows / f"expense-approval{suffix}")


def test_the_expense_approval_page_shows_who_asks_and_the_amount(server: Server) -> None:
    use_expense_approval(server)
    doc = server.start("expense-approval", '{"user": "ann", "amount": 42}')
    page = http(doc["suspended"][0]["resume_url"], headers={"Accept": "text/html"})
    assert page.status == 200
    html = page.text
    assert ('<p class="description" id="description">Submit an expense, wait for a manager, '
            "then pay or reject, and notify.</p>") in html
    assert ('<div class="fields" id="run-input"><dl><dt>user</dt><dd><span class="v">ann</span>'
            "</dd><dt>amount</dt><dd>42</dd></dl></div>") in html
    assert '<h3>submit</h3><div class="fields" id="output-submit"><dl><dt>id</dt>' in html
    assert "<pre" not in html and "{&quot;" not in html  # no raw JSON
    # times from the server's clock: the 7-day deadline of a run started just now
    assert re.search(r"<dt>Deadline</dt><dd>in 6 days \(\d+ \w{3}, \d\d:\d\d UTC\)</dd>", html)
    assert re.search(r"<dt>Waiting since</dt><dd>(just now|1 minute ago) \(", html)
    assert "<dt>At the deadline</dt><dd>the run is cancelled</dd>" in html
    # one button per action; `approved` is what the Approve button says, no checkbox repeats it
    assert re.findall(r"<button[^>]*>([^<]*)</button>", html) == ["Approve", "Reject"]
    assert 'name="field:approved"' not in html and 'id="f-reviewer"' in html
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert server.load(doc["run_id"]).status == "suspended"  # showing the page resumed nothing


REFS = """
    name: refs
    steps:
      - id: review
        wait: true
        resume_schema:
          type: object
          $defs:
            count: {type: integer, title: How many}
            share: {type: number}
            flag: {type: boolean, description: Tick to agree}
            size: {enum: [small, large]}
          required: [count]
          properties:
            count: {$ref: "#/$defs/count"}
            share: {$ref: "#/$defs/share", title: Share}
            agreed: {$ref: "#/$defs/flag"}
            size: {$ref: "#/$defs/size"}
"""


def test_a_property_that_refers_to_a_typed_definition_gets_that_types_input(
        server: Server) -> None:
    # the page's fields follow a local $ref as a query's and a form's coercion do: an integer
    # definition is a number input, not a JSON box (which the form then read as JSON)
    server.project.workflow("refs", REFS)
    doc = server.start("refs")
    url = doc["suspended"][0]["resume_url"]
    html = http(url + "&count=3", headers={"Accept": "text/html"}).text
    assert "<textarea" not in html
    assert re.search(r'<label for="f-count">How many <span class="req"[^>]*>\*</span></label>'
                     r'<input type="number" id="f-count" name="field:count" step="1" value="3" '
                     r"required>", html), html
    assert re.search(r'<label for="f-share">Share</label><input type="number" id="f-share" '
                     r'name="field:share" step="any"', html)
    assert 'type="checkbox" id="f-agreed" name="field:agreed"' in html
    assert '<div class="help">Tick to agree</div>' in html
    assert re.search(r'<select id="f-size" name="field:size"><option value="" selected>\(none\)'
                     r'</option><option value="0">small</option><option value="1">large</option>',
                     html)
    sent = http(url, "POST", b"_wfrun_form=approval&field%3Acount=4&field%3Ashare=0.5"
                b"&field%3Aagreed=true&field%3Asize=1",
                {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"})
    assert sent.status == 202, sent.text
    run = server.wait_until_settled(doc["run_id"])
    assert run.steps["review"].resume_data == {"count": 4, "share": 0.5, "agreed": True,
                                                "size": "large"}


MIXED = """
    name: mixed
    steps:
      - id: review
        wait: true
        resume_schema:
          type: object
          required: [note]
          properties:
            note: {type: string}
            pick: {enum: [1, "1", true, "true", null, "null", 1]}
            size: {enum: [small, 2, null]}
"""


def _options(html: str, name: str) -> list[tuple[str, bool, str]]:
    select = re.search(rf'<select id="f-{name}"[^>]*>(.*?)</select>', html)
    assert select, html
    return [(value, bool(selected), text) for value, selected, text in re.findall(
        r'<option value="([^"]*)"( selected)?>([^<]*)</option>', select[1])]


def test_an_enum_of_mixed_types_shows_distinct_options_and_gives_back_their_types(
        server: Server) -> None:
    # 1, "1" and true were three options all reading 1 or true, and a value 1 also selected
    # true (1 == True in Python): the page now shows them as JSON where plain text would
    # look the same, selects only the value itself, and the form posts an option's index, so
    # what comes back is the enum's value with its JSON type
    server.project.workflow("mixed", MIXED)
    doc = server.start("mixed")
    url = doc["suspended"][0]["resume_url"]
    html = http(url, headers={"Accept": "text/html"}).text
    assert [(v, t) for v, _, t in _options(html, "pick")] == [
        ("", "(none)"), ("0", "1"), ("1", "&quot;1&quot;"), ("2", "true"),
        ("3", "&quot;true&quot;"), ("4", "null"), ("5", "&quot;null&quot;")]  # one 1
    assert [t for _, _, t in _options(html, "size")] == ["(none)", "small", "2", "null"]
    form = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"}
    # a form sent back (the note missing) selects what was chosen, and only that
    for index in range(6):
        again = http(url, "POST", f"_wfrun_form=approval&field%3Apick={index}".encode(), form)
        assert again.status == 422
        assert [s for _, s, _ in _options(again.text, "pick")][1:] == [
            i == index for i in range(6)], index
    assert server.load(doc["run_id"]).status == "suspended"
    sent = http(url, "POST", b"_wfrun_form=approval&field%3Anote=ok&field%3Apick=0"
                b"&field%3Asize=1", form)
    assert sent.status == 202, sent.text
    data = server.wait_until_settled(doc["run_id"]).steps["review"].resume_data
    assert data == {"note": "ok", "pick": 1, "size": 2}
    assert type(data["pick"]) is int and type(data["size"]) is int


def test_each_option_of_a_mixed_enum_comes_back_with_its_json_type() -> None:
    schema = {"type": "object", "properties": {"pick": {"enum": [1, "1", True, "true", None,
                                                                "null", 1.5, [1], {"a": 1}]}}}
    fields = fields_for(schema)
    assert fields is not None and fields[0].kind == "select"
    labels = fields[0].option_labels()
    assert labels == ["1", '"1"', "true", '"true"', "null", '"null"', "1.5", "[1]", '{"a": 1}']
    for index, value in enumerate(schema["properties"]["pick"]["enum"]):
        data, errors = form_data(schema, {"field:pick": [str(index)]})
        assert not errors and json.dumps(data["pick"]) == json.dumps(value), index
    assert form_data(schema, {"field:pick": ["²"]})[1][0]["message"] == (
        "pick: choose one of the listed values")
    # text alone, or text beside values that read differently, stays plain
    assert fields_for({"properties": {"p": {"enum": ["a", 2, None]}}})[0].option_labels() == [  # type: ignore[index]
        "a", "2", "null"]


REQUIRED_CHOICE = """
steps:
  - id: review
    wait: true
    resume_schema:
      type: object
      required: [decision]
      properties:
        decision: {enum: [approve, reject]}
        level: {enum: [null, low, high]}
"""


def test_a_select_starts_on_no_choice_so_a_careless_submit_sends_nothing(server: Server) -> None:
    # a required select with its first option preselected let a click send "approve" unread,
    # and a null first in an enum was preselected as if chosen
    server.project.workflow("choose", REQUIRED_CHOICE)
    doc = server.start("choose")
    url = doc["suspended"][0]["resume_url"]
    html = http(url, headers={"Accept": "text/html"}).text
    assert re.search(r'<select id="f-decision" name="field:decision" required><option value="" '
                     r'selected>\(choose one\)</option><option value="0">approve</option>', html)
    assert [s for _, s, _ in _options(html, "level")] == [True, False, False, False]
    form = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"}
    blank = http(url, "POST", b"_wfrun_form=approval&field%3Adecision=&field%3Alevel=", form)
    assert blank.status == 422 and server.load(doc["run_id"]).status == "suspended"
    # what was chosen stays chosen when the page comes back, a null too
    again = http(url, "POST", b"_wfrun_form=approval&field%3Adecision=&field%3Alevel=0", form)
    assert again.status == 422
    assert [s for _, s, _ in _options(again.text, "level")] == [False, True, False, False]
    sent = http(url, "POST", b"_wfrun_form=approval&field%3Adecision=1&field%3Alevel=0", form)
    assert sent.status == 202, sent.text
    data = server.wait_until_settled(doc["run_id"]).steps["review"].resume_data
    assert data == {"decision": "reject", "level": None}


class _SubmitButtons(HTMLParser):
    """The submit buttons of the approval form, in tree order: (tag, attributes)."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = False
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "form" and named.get("id") == "approval":
            self.inside = True
        elif self.inside and ((tag == "button" and named.get("type", "submit") == "submit")
                              or (tag == "input" and named.get("type") == "submit")):
            self.found.append((tag, named))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False


def _default_button(html: str) -> dict[str, str | None]:
    """The form's default button: the one HTML's implicit submission (Enter in a field) uses."""
    parser = _SubmitButtons()
    parser.feed(html)
    return parser.found[0][1]


def test_enter_in_a_field_of_a_page_with_actions_decides_nothing(server: Server) -> None:
    # Enter in the reviewer's text box clicked the first button, Approve (HTML's implicit
    # submission): the default button is now a disabled one, which makes Enter do nothing
    doc = server.start("approval")
    html = http(doc["suspended"][0]["resume_url"], headers={"Accept": "text/html"}).text
    default = _default_button(html)
    assert "disabled" in default and "name" not in default and "hidden" in default
    assert re.findall(r"<button[^>]*>([^<]*)</button>", html) == ["Approve", "Reject"]
    # a step without actions keeps its Submit, which Enter uses as before
    plain = server.start("suspend-code")
    html = http(plain["suspended"][0]["resume_url"], headers={"Accept": "text/html"}).text
    default = _default_button(html)
    assert default.get("id") == "submit" and "disabled" not in default


NESTED = """
steps:
  - id: review
    wait: true
    resume_schema:
      type: object
      properties:
        nested: {type: object}
        count: {type: integer}
        share: {type: number}
"""


def test_a_json_box_prefilled_from_the_query_holds_the_value_not_its_text(server: Server) -> None:
    # `&nested={"a":1}` showed "{\"a\":1}" (a JSON string), which the box then sent as is
    server.project.workflow("nested", NESTED)
    doc = server.start("nested")
    url = doc["suspended"][0]["resume_url"]
    html = http(url + "&nested=%7B%22a%22%3A1%7D&count=3",
                headers={"Accept": "text/html"}).text
    box = re.search(r'<textarea id="f-nested" name="field:nested">([^<]*)</textarea>', html)
    assert box is not None and unescape(box[1]) == '{"a": 1}', html
    assert re.search(r'id="f-count" name="field:count" step="1" value="3"', html)
    text = http(url + "&nested=not-json", headers={"Accept": "text/html"}).text
    assert '>&quot;not-json&quot;</textarea>' in text  # text that is not JSON: as before
    sent = http(url, "POST", urlencode({"_wfrun_form": "approval",
                                        "field:nested": unescape(box[1])}).encode(),
                {"Content-Type": "application/x-www-form-urlencoded"})
    assert sent.status == 202, sent.text  # the box sent unchanged: the object
    assert server.wait_until_settled(doc["run_id"]).steps["review"].resume_data == {
        "nested": {"a": 1}}


@pytest.mark.parametrize("raw", ["1_000", "１", "٣", " 12", "12 ", "+5", "0x10", "1e3_0",
                                 "inf", "nan", "1" * 101])
def test_number_fields_take_ascii_number_text_only(raw: str) -> None:
    # int() took `1_000` (stored 1000) and full-width digits; float() `1_0.5` and spaces
    schema = {"type": "object", "properties": {"count": {"type": "integer"},
                                               "share": {"type": "number"}}}
    for name, message in (("count", "count: enter a whole number"),
                          ("share", "share: enter a number")):
        data, errors = form_data(schema, {f"field:{name}": [raw]})
        assert errors == [{"path": f"$.{name}", "message": message}], (raw, data)
        assert query_data(schema, {name: [raw]}) == {name: raw}  # stays text: the schema refuses it


def test_number_fields_take_what_json_and_a_number_input_write() -> None:
    schema = {"type": "object", "properties": {"count": {"type": "integer"},
                                               "share": {"type": "number"}}}
    for raw, count, share in (("12", 12, 12), ("-3", -3, -3), ("007", 7, 7)):
        assert form_data(schema, {"field:count": [raw], "field:share": [raw]}) == (
            {"count": count, "share": share}, [])
    for raw, share in (("0.5", 0.5), (".5", 0.5), ("-1.5e3", -1500.0), ("2E-1", 0.2)):
        assert form_data(schema, {"field:share": [raw]}) == ({"share": share}, [])
        assert query_data(schema, {"share": [raw]}) == {"share": share}
        assert form_data(schema, {"field:count": [raw]})[1][0]["message"] == (
            "count: enter a whole number")
