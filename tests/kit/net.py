"""Loopback networking: a free port, one HTTP GET, "is this version served"."""

from __future__ import annotations

import http.client
import socket
from typing import Optional

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now; someone may take it before it is used."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def http_get(target: str, path: str = "/", timeout: float = 10.0) -> tuple[int, str]:
    """One GET on a fresh connection to `target` ("host:port"): status and body.

    Raises OSError (refused, reset, timed out) or http.client.HTTPException.
    """
    host, _, port = target.rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


def try_get(target: str, path: str = "/", timeout: float = 5.0) -> Optional[tuple[int, str]]:
    """`http_get`, or None where it raises: for polling something that may be down."""
    try:
        return http_get(target, path, timeout)
    except (OSError, http.client.HTTPException):
        return None


def serves(port: int, version: str, times: int = 6, timeout: float = 5.0) -> bool:
    """True when `times` GETs of / on 127.0.0.1:port in a row get 200 and `version`.

    The test and bench apps start their body with their version and a space;
    several requests in a row make it likely that every worker has it.
    """
    for _ in range(times):
        got = try_get(f"{LOOPBACK}:{port}", "/", timeout)
        if got is None or got[0] != 200 or not got[1].startswith(version + " "):
            return False
    return True
