"""The `format` checks wfrun adds to jsonschema's (which checks `date-time`, `time`, `hostname`
and `uri` only where optional packages are installed): RFC 3339 date-times and times, RFC 1123
host names and RFC 3986 URIs, with the standard library alone. Imported only when a schema is
checked (by wfrun._schema)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from datetime import date

# jsonschema's own checks kept (they need nothing beyond the standard library), the ones below
# added; every other format is an annotation only, whatever else is installed. idn-hostname is
# jsonschema's check with the `idna` package, which wfrun does not require: checked only where
# it is installed.
KEPT = ("date", "email", "idn-email", "idn-hostname", "ipv4", "ipv6", "regex", "uuid")

# What each checked format takes, in the words of a refusal: `"d" must be WORDS, not "x"`.
WORDS = {
    "date": "a date (RFC 3339, such as 2026-12-03)",
    "date-time": "a date-time (RFC 3339, such as 2026-12-03T09:00:00Z)",
    "time": "a time with its offset (RFC 3339, such as 09:00:00Z)",
    "email": "an email address",
    "idn-email": "an email address",
    "hostname": "a host name (such as example.com)",
    "idn-hostname": "a host name (such as example.com)",
    "ipv4": "an IPv4 address (such as 192.0.2.1)",
    "ipv6": "an IPv6 address (such as 2001:db8::1)",
    "uri": "a URI with its scheme (such as https://example.com/path)",
    "uri-reference": "a URI or a relative reference (such as /path?q=1)",
    "uuid": "a UUID (such as 123e4567-e89b-12d3-a456-426614174000)",
    "regex": "a regular expression",
}

# A value each checked format takes (the suggested resume command's data uses them).
SAMPLES = {
    "date": "2026-12-03", "date-time": "2026-12-03T09:00:00Z", "time": "09:00:00Z",
    "email": "someone@example.com", "idn-email": "someone@example.com",
    "hostname": "example.com", "idn-hostname": "example.com", "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1", "uri": "https://example.com/", "uri-reference": "/path",
    "uuid": "123e4567-e89b-12d3-a456-426614174000", "regex": ".*",
}

# RFC 3339 section 5.6 (`T` and `Z` in either case, as its note allows; ASCII digits only).
_TIME = r"([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?([zZ]|([+-])([0-9]{2}):([0-9]{2}))"
_FULL_TIME = re.compile(_TIME)
_DATE_TIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})[tT]" + _TIME)


def _time_ok(groups: tuple[str | None, ...]) -> bool:
    """The numbers of an RFC 3339 full-time in range; second 60 (a leap second) only at
    23:59 UTC, as the leap seconds RFC 3339 allows are inserted there."""
    hour, minute, second, _frac, zulu, sign, off_hour, off_minute = groups
    h, m, s = int(hour or 0), int(minute or 0), int(second or 0)
    oh, om = (0, 0) if zulu in ("z", "Z") else (int(off_hour or 0), int(off_minute or 0))
    if h > 23 or m > 59 or s > 60 or oh > 23 or om > 59:
        return False
    if s == 60:
        offset = (oh * 60 + om) * (-1 if sign == "-" else 1)
        return (h * 60 + m - offset) % 1440 == 23 * 60 + 59
    return True


def is_date_time(value: object) -> bool:
    """RFC 3339 `date-time`, such as 2026-12-03T09:00:00Z (anything not a string passes)."""
    if not isinstance(value, str):
        return True
    match = _DATE_TIME.fullmatch(value)
    if match is None:
        return False
    year, month, day, *rest = match.groups()
    try:
        date(int(year), int(month), int(day))
    except ValueError:
        return False
    return _time_ok(tuple(rest))


def is_time(value: object) -> bool:
    """RFC 3339 `full-time` (a time with its offset), such as 09:00:00Z."""
    if not isinstance(value, str):
        return True
    match = _FULL_TIME.fullmatch(value)
    return match is not None and _time_ok(match.groups())


_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def is_hostname(value: object) -> bool:
    """An RFC 1123 host name: dot-separated labels of 1-63 ASCII letters, digits and hyphens,
    not starting or ending with a hyphen, 253 characters at most (no trailing dot); a label
    with `--` in its third and fourth places must be an `xn--` label that decodes as
    Punycode (RFC 5891)."""
    if not isinstance(value, str):
        return True
    if not value or len(value) > 253:
        return False
    for label in value.split("."):
        if not _LABEL.fullmatch(label):
            return False
        if label[2:4] == "--":
            if label[:4].lower() != "xn--":
                return False
            try:
                label[4:].encode("ascii").decode("punycode")
            except UnicodeError:
                return False
    return True


# RFC 3986 appendix A, its rules spelled out as regular expressions.
_UNRESERVED = r"A-Za-z0-9\-._~"
_SUB_DELIMS = r"!$&'()*+,;="
_PCT = r"%[0-9A-Fa-f]{2}"
_PCHAR = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}:@]|{_PCT})"
_SEGMENT = rf"{_PCHAR}*"
_SEGMENT_NZ = rf"{_PCHAR}+"
_SEGMENT_NZ_NC = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}@]|{_PCT})+"  # no colon
_USERINFO = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}:]|{_PCT})*"
_REG_NAME = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}]|{_PCT})*"
_IP_LITERAL = r"\[(?P<ip>[0-9A-Fa-f:.]+|[vV][0-9A-Fa-f]+\.[" + _UNRESERVED + _SUB_DELIMS + r":]+)\]"
_AUTHORITY = rf"(?:{_USERINFO}@)?(?:{_IP_LITERAL}|{_REG_NAME})(?::[0-9]*)?"
_PATH_ABEMPTY = rf"(?:/{_SEGMENT})*"
_PATH_ABSOLUTE = rf"/(?:{_SEGMENT_NZ}(?:/{_SEGMENT})*)?"
_PATH_ROOTLESS = rf"{_SEGMENT_NZ}(?:/{_SEGMENT})*"
_PATH_NOSCHEME = rf"{_SEGMENT_NZ_NC}(?:/{_SEGMENT})*"
_QUERY_FRAGMENT = rf"(?:\?(?:{_PCHAR}|[/?])*)?(?:#(?:{_PCHAR}|[/?])*)?"
_URI = re.compile(
    rf"[A-Za-z][A-Za-z0-9+\-.]*:(?://{_AUTHORITY}{_PATH_ABEMPTY}|{_PATH_ABSOLUTE}|{_PATH_ROOTLESS})?"
    + _QUERY_FRAGMENT)
_RELATIVE_REF = re.compile(
    rf"(?://{_AUTHORITY}{_PATH_ABEMPTY}|{_PATH_ABSOLUTE}|{_PATH_NOSCHEME})?" + _QUERY_FRAGMENT)


def _ip_literal_ok(match: re.Match[str]) -> bool:
    """An IP literal's address (`[2001:db8::1]`) is an IPv6 address (IPvFuture passes)."""
    address = match.group("ip")
    if address is None or address[:1] in ("v", "V"):
        return True
    try:
        ipaddress.IPv6Address(address)
    except ValueError:
        return False
    return True


def is_uri(value: object) -> bool:
    """An RFC 3986 URI: a scheme and what follows it (https://example.com/path, mailto:...)."""
    if not isinstance(value, str):
        return True
    match = _URI.fullmatch(value)
    return match is not None and _ip_literal_ok(match)


def is_uri_reference(value: object) -> bool:
    """An RFC 3986 URI reference: a URI or a relative reference (`/path`, `?q=1`, `#top`)."""
    if not isinstance(value, str):
        return True
    match = _URI.fullmatch(value) or _RELATIVE_REF.fullmatch(value)
    return match is not None and _ip_literal_ok(match)


ADDED: dict[str, Callable[[object], bool]] = {
    "date-time": is_date_time, "time": is_time, "hostname": is_hostname,
    "uri": is_uri, "uri-reference": is_uri_reference,
}
