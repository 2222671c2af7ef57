"""`wfrun serve`: run the HTTP endpoint behind resume and cancel URLs until SIGTERM/SIGINT."""

import signal
import sys
import threading
from typing import Annotated, Any

import typer

from wfrun.errors import UsageError

from ._app import app, handle_errors
from ._settings import settings


def _is_loopback(host: str) -> bool:
    import ipaddress  # only here: it is not free to import, and every command loads this module

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@app.command()
@handle_errors
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on (0: any free).")]
    = 8787,
    base_url: Annotated[str | None, typer.Option(
        envvar="WFRUN_BASE_URL", help="What links say, e.g. https://wf.example.com behind a proxy.")]
    = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Background workers continuing runs.")]
    = 4,
    header_timeout: Annotated[float, typer.Option(
        min=0.1, max=3600, envvar="WFRUN_HEADER_TIMEOUT",
        help="Seconds a client may take to send its request line and headers.")] = 10.0,
    body_timeout: Annotated[float, typer.Option(
        min=0.1, max=3600, envvar="WFRUN_BODY_TIMEOUT",
        help="Seconds a client may take to send a request body.")] = 60.0,
    max_per_client: Annotated[int, typer.Option(
        min=1, max=128, envvar="WFRUN_MAX_PER_CLIENT",
        help="Connections one address may hold at once (of 128); more get 503.")] = 32,
) -> None:
    """Answer resume and cancel URLs (a POST resumes, a GET describes; a browser gets a page) and
    start runs: POST /workflows/NAME/runs with a token from 'wfrun token create'.

    Example: wfrun serve --port 8787 --base-url https://wf.example.com
    """
    from wfrun._jsoninput import max_payload
    from wfrun.http import WfrunServer

    if base_url is not None and not base_url.startswith(("http://", "https://")):
        raise UsageError(f"--base-url {base_url!r} must start with http:// or https://")
    max_payload()  # a bad WFRUN_MAX_PAYLOAD is an error now, not on the first request
    current = settings()

    def engine() -> Any:
        made = current.engine()
        made.base_url = links_base
        return made

    try:
        server = WfrunServer(host, port, engine, workers=workers, max_per_client=max_per_client,
                             header_timeout=header_timeout, body_timeout=body_timeout)
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --host or --port"
        ) from None
    bound = f"http://{_url_host(host)}:{server.server_port}"
    links_base = (base_url or bound).rstrip("/")
    engine().store.secret_key()  # create the state directory and URL key now, not on a request
    reach = ("loopback only: other machines cannot reach it; put a reverse proxy in front or "
             "pass --host") if _is_loopback(host) else (
             "reachable from other machines: anyone holding a link can use it")
    print(f"wfrun serve: listening on {bound} ({reach})", flush=True)
    print(f"links point to {links_base}; stop with Ctrl-C or SIGTERM", flush=True)
    stop = threading.Event()

    def request_stop(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    thread = threading.Thread(target=server.serve_forever, name="wfrun-http", daemon=True)
    thread.start()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        print("wfrun serve: stopping (waiting for steps that are executing)", file=sys.stderr,
              flush=True)
        server.shutdown()
        server.close()
