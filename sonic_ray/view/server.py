"""The viser server: bind where asked (127.0.0.1 unless told otherwise), say where, stop on Ctrl-C.

viser itself moves to the next port when the asked one is taken; a viewer that silently lands on
another port than the one a tunnel or a bookmark points at is worse than an error, so the port is
checked first and a busy one is reported by name.
"""

from __future__ import annotations

import contextlib
import io
import socket
import sys
import time
from collections.abc import Callable

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


class PortBusy(OSError):
    """The asked host:port cannot be bound (in use, or not an address of this machine)."""


def check_port(host: str, port: int) -> None:
    """Raise PortBusy unless (host, port) can be bound now (port 0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds (TIME_WAIT is fine)
        try:
            s.bind((host, port))
        except OSError as e:
            raise PortBusy(f"cannot listen on {host}:{port} ({e.strerror or e}); pick another --port") from e


def host_warning(host: str) -> str | None:
    if host in LOCAL_HOSTS:
        return None
    return (
        f"warning: --host {host} makes the viewer reachable from other machines; it has no "
        "authentication, and anyone who reaches the port can watch and drive it"
    )


def start_server(host: str, port: int, *, title: str):
    """A started viser server on exactly (host, port); PortBusy otherwise."""
    import viser

    check_port(host, port)
    with contextlib.redirect_stdout(io.StringIO()):  # viser's banner; `announce` prints ours
        server = viser.ViserServer(host=host, port=port, label=title, verbose=False)
    if port and server.get_port() != port:  # lost a race for the port after the check
        server.stop()
        raise PortBusy(f"cannot listen on {host}:{port} (taken while starting); pick another --port")
    server.gui.configure_theme(control_width="large", dark_mode=False, show_logo=False)
    server.scene.set_up_direction("+z")
    return server


def url_of(server, host: str) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{server.get_port()}"


def announce(server, host: str, what: str, *, out=sys.stdout) -> str:
    url = url_of(server, host)
    warn = host_warning(host)
    if warn:
        print(warn, file=sys.stderr)
    print(f"sonic-ray view {what}: open {url} in a browser (Ctrl-C stops)", file=out)
    if host in LOCAL_HOSTS:
        print(
            f"  from another machine: ssh -L {server.get_port()}:127.0.0.1:{server.get_port()} <this host>, "
            f"then open http://127.0.0.1:{server.get_port()}",
            file=out,
        )
    out.flush()
    return url


def serve(
    server, tick: Callable[[float], None], *, rate_hz: float, stop: Callable[[], bool] = lambda: False
) -> None:
    """Call tick(dt) at about rate_hz until Ctrl-C (or `stop()`), then stop the server."""
    period, last = 1.0 / rate_hz, time.perf_counter()
    try:
        while not stop():
            now = time.perf_counter()
            tick(now - last)
            last = now
            time.sleep(max(0.0, period - (time.perf_counter() - now)))
    except KeyboardInterrupt:
        print("\nsonic-ray view: stopped", file=sys.stderr)
    finally:
        server.stop()
