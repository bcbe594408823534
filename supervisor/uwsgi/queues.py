"""How many connections wait in a listening socket's queue, from the kernel.

uWSGI's stats report 0 for unix sockets; the supervisor holds the sockets
and can ask the kernel directly: TCP_INFO for a TCP listener (tcpi_unacked
is the accept queue, tcpi_sacked its limit) and sock_diag for a unix one
(UNIX_DIAG_RQLEN: queued connections and the backlog).
"""

from __future__ import annotations

import os
import socket
import struct
from typing import Optional

# linux/sock_diag.h, linux/unix_diag.h, linux/netlink.h
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 0x01
_NLMSG_ERROR = 2
_UDIAG_SHOW_RQLEN = 0x00000010
_UNIX_DIAG_RQLEN = 4
_TCP_LISTEN = 10
_NLMSG_HDR = struct.Struct("=IHHII")
_UNIX_DIAG_REQ = struct.Struct("=BBHIIIII")  # family, protocol, pad, states, ino, show, cookie
_UNIX_DIAG_MSG = struct.Struct("=BBBBIII")  # family, type, state, pad, ino, cookie
_RTA = struct.Struct("=HH")
_TCP_INFO_LEN = 104
_TCPI_UNACKED = 24  # offset of tcpi_unacked in struct tcp_info (u32)
_TCPI_SACKED = 28  # tcpi_sacked: the listener's backlog


def queue_length(sock: socket.socket) -> Optional[tuple[int, int]]:
    """(connections queued now, the queue's limit), or None if the kernel does not say."""
    try:
        if sock.family == socket.AF_UNIX:
            return _unix_queue(os.fstat(sock.fileno()).st_ino)
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_LEN)
    except OSError:
        return None
    if len(info) < _TCPI_SACKED + 4:
        return None
    (queued,) = struct.unpack_from("=I", info, _TCPI_UNACKED)
    (limit,) = struct.unpack_from("=I", info, _TCPI_SACKED)
    return queued, limit


def _unix_queue(inode: int) -> Optional[tuple[int, int]]:
    req = _UNIX_DIAG_REQ.pack(
        socket.AF_UNIX, 0, 0, 1 << _TCP_LISTEN, inode, _UDIAG_SHOW_RQLEN, 0xFFFFFFFF, 0xFFFFFFFF
    )
    msg = _NLMSG_HDR.pack(_NLMSG_HDR.size + len(req), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 1, 0)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as nl:
        nl.settimeout(1.0)
        nl.send(msg + req)
        data = nl.recv(65536)
    if len(data) < _NLMSG_HDR.size:
        return None
    length, kind, _, _, _ = _NLMSG_HDR.unpack_from(data)
    if kind == _NLMSG_ERROR:
        return None
    offset = _NLMSG_HDR.size + _UNIX_DIAG_MSG.size
    end = min(length, len(data))
    while offset + _RTA.size <= end:
        rta_len, rta_type = _RTA.unpack_from(data, offset)
        if rta_len < _RTA.size:
            break
        if rta_type == _UNIX_DIAG_RQLEN and rta_len >= _RTA.size + 8:
            queued, limit = struct.unpack_from("=II", data, offset + _RTA.size)
            return queued, limit
        offset += (rta_len + 3) & ~3
    return None
