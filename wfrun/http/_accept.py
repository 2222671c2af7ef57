"""Content negotiation: whether a client gets a page (a browser) or JSON, from the media
ranges and q values of its Accept header (RFC 9110)."""

from __future__ import annotations


def wants_html(headers: dict[str, str]) -> bool:
    """True for a browser: its Accept header names text/html (or text/*) as acceptable (q > 0),
    and prefers it at least as much as application/json."""
    ranges = _media_ranges(headers.get("accept", ""))
    html = _quality(ranges, ("text", "html"), ("text", "*"))  # not `*/*`: curl's is for JSON
    json_q = _quality(ranges, ("application", "json"), ("application", "*"), ("*", "*"))
    return html > 0 and html >= json_q


def _media_ranges(accept: str) -> list[tuple[str, str, float]]:
    """An Accept header's media ranges as (type, subtype, q), lowercased; a range that is not
    `type/subtype`, or whose q is not a number from 0 to 1, is left out."""
    ranges = []
    for item in accept.lower().split(","):
        media, *params = (part.strip() for part in item.split(";"))
        kind, slash, subtype = media.partition("/")
        if not (kind and slash and subtype):
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = -1.0
                break  # what follows q is an accept-ext, not a media type parameter
        if 0 <= q <= 1:
            ranges.append((kind, subtype, q))
    return ranges


def _quality(ranges: list[tuple[str, str, float]], *specific_first: tuple[str, str]) -> float:
    """The q of the first of `specific_first` (a media type, then the ranges that match it, most
    specific first) that the Accept header's ranges name; 0 if they name none."""
    for media in specific_first:
        found = [q for kind, subtype, q in ranges if (kind, subtype) == media]
        if found:
            return max(found)
    return 0.0
