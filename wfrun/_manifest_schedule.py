"""`schedule:` of a manifest (SPEC §11), checked for shape."""

from __future__ import annotations

from wfrun._manifest_checker import Checker, duration, json_value, shown
from wfrun._specs import Schedule
from wfrun.durations import format_duration

SCHEDULE_KEYS = ("cron", "every", "timezone", "input", "overlap", "catchup")
OVERLAP = ("skip", "allow", "cancel_previous")
CATCHUP = ("latest", "all", "none")
CRON_NICKNAMES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")


def parse_schedule(check: Checker, raw: object) -> Schedule:
    """`schedule:` (SPEC §11), checked for shape here; the cron expression's fields, the time
    zone and the input against `input_schema` are checked with the code (`wfrun._firetimes`),
    so that reading a manifest imports no cron library."""
    example = "such as {cron: \"0 9 * * 1-5\", timezone: Europe/Berlin} or {every: 15m}"
    if not isinstance(raw, dict):
        raise check.fail(f"must be a mapping, {example}", key="schedule")
    for key in raw:
        if key not in SCHEDULE_KEYS:
            raise check.fail(f"unknown key {shown(key)} (known: {', '.join(SCHEDULE_KEYS)})",
                             key="schedule")
    if ("cron" in raw) == ("every" in raw):
        raise check.fail(f"needs either 'cron' or 'every' (not both), {example}", key="schedule")
    cron, every, every_text = raw.get("cron"), None, None
    if "cron" in raw:  # (`cron: null` too: not a cron expression)
        fields = cron.split() if isinstance(cron, str) else []
        if not (len(fields) == 5 or (len(fields) == 1 and fields[0].lower() in CRON_NICKNAMES)):
            raise check.fail(f"cron: {shown(cron)} is not a cron expression of 5 fields (minute hour "
                             "day-of-month month day-of-week, such as \"0 9 * * 1-5\")",
                             key="schedule")
        cron = " ".join(fields)
    else:
        try:
            every = duration(raw["every"])
        except ValueError as exc:
            raise check.fail(f"every: {exc}", key="schedule") from None
        seconds = every.total_seconds()
        if seconds < 1 or seconds != int(seconds):
            raise check.fail(f"every: {shown(raw['every'])} must be a whole number of seconds, at "
                             "least 1s", key="schedule")
        every_text = format_duration(every)
        if "timezone" in raw:
            raise check.fail("timezone: applies to 'cron' only ('every' counts from "
                             "1970-01-01T00:00Z in any time zone); use cron for times of day",
                             key="schedule")
    timezone = raw.get("timezone", "UTC")
    if not isinstance(timezone, str) or not timezone.strip():
        raise check.fail("timezone: must be an IANA time zone name such as Europe/Berlin or UTC",
                         key="schedule")
    for key, allowed in (("overlap", OVERLAP), ("catchup", CATCHUP)):
        value = raw.get(key, allowed[0])
        if value not in allowed:
            hint = (" (YAML reads yes/no/on/off/true/false as booleans: quote it)"
                    if isinstance(value, bool) else "")
            raise check.fail(f"{key}: must be one of {', '.join(allowed)} (got {shown(value)}){hint}",
                             key="schedule")
    run_input = raw.get("input", {})
    if not json_value(run_input):
        raise check.fail("input: must be JSON data (YAML dates and the like have no JSON type: "
                         "quote them)", key="schedule")
    return Schedule(cron=cron, every=every, every_text=every_text, timezone=timezone.strip(),
                    input=run_input, overlap=raw.get("overlap", "skip"),
                    catchup=raw.get("catchup", "latest"))
