"""The answers the server makes by itself, before any handler, as sentences for people: the
standard library's own errors (a bad request line, one too long, too many headers) and the 503
of a connection over the limits; and the headers every response carries."""

from __future__ import annotations

from http import HTTPStatus

from ._callback import json_reply

BUSY_RETRY_AFTER = 5  # seconds a connection over the limits is told to wait (503)
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


# what the standard library's own errors say, as sentences (its `message` is a phrase, or none)
LIBRARY_ERRORS = {
    400: "the request line is not valid HTTP ({message}); send a method, a path and the HTTP "
         "version, separated by spaces",
    414: "the request line is over 65536 bytes; send a shorter URL (data goes in the body, up "
         "to WFRUN_MAX_PAYLOAD bytes)",
    431: "the request's headers are too long or too many ({message}); send at most 100 "
         "headers of under 64 KiB each",
    505: "this HTTP version is not supported ({message}); use version 1.1 or 1.0 of HTTP",
}


def library_error(code: int, message: str | None = None) -> str:
    """What to answer for an error the standard library's server found in a request: a
    sentence saying what was wrong and what to do."""
    phrase = message or HTTPStatus(code).phrase
    phrase = phrase if len(phrase) <= 200 else phrase[:200] + "…"  # (it may quote the request)
    sentence = LIBRARY_ERRORS.get(code)
    if sentence is None:
        return f"the request cannot be served ({phrase}); check it and send it again"
    return sentence.format(message=phrase)


def busy_reply(per_client: bool, limit: int) -> bytes:
    """The whole 503 response for a connection over the server's or its address's limit:
    a JSON sentence saying which, and to send again in a few seconds (Retry-After)."""
    connections = f"{limit} connection{'' if limit == 1 else 's'}"
    if per_client:
        error = (f"your address already holds {connections} to this server, the most one "
                 "address may; close some (or let them finish), then send this again in a "
                 "few seconds")
    else:
        error = (f"the server is already answering {connections}, the most it takes at once; "
                 "send this again in a few seconds")
    body = json_reply(503, {"error": error}).body
    head = "".join(f"{name}: {value}\r\n" for name, value in {
        "Content-Type": "application/json", "Content-Length": str(len(body)),
        **SECURITY_HEADERS, "Retry-After": str(BUSY_RETRY_AFTER), "Connection": "close",
    }.items())
    return b"HTTP/1.0 503 Service Unavailable\r\n" + head.encode() + b"\r\n" + body
