"""uWSGI 2.0's graceful quit and connections it has just accepted.

A held listening socket (as the supervisor or systemd holds it) is served by
one uWSGI master after another; 16 client threads keep it busy. Each cycle
stops the master one of two ways, then starts the next on the same socket:

  q   `q` on the master FIFO (what the supervisor sent before)
  pq  `p`, 0.5 s, then `q` (what it sends now: machine.PAUSE_SETTLE)

Connections that arrive between two masters wait in the socket's queue, so
every failed request is one a quitting worker dropped. Run:

  .venv/bin/python bench/probes/stop_race.py q 120
  .venv/bin/python bench/probes/stop_race.py pq 120

Bounded: 127.0.0.1 only, `cycles` stops, every process ended before exit.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

UWSGI = str(Path(sys.executable).with_name("uwsgi"))
APP = """\
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok\\n"]
"""


def main(mode: str, cycles: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="stop-race-"))
    (tmp / "app.py").write_text(APP)
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1024)
    port, fd = lsock.getsockname()[1], lsock.fileno()
    os.set_inheritable(fd, True)
    counts = {"ok": 0, "failed": 0}
    lock = threading.Lock()
    stop = threading.Event()

    def start(n: int) -> tuple[subprocess.Popen[bytes], Path]:
        fifo = tmp / f"fifo{n}"
        argv = [UWSGI, "--master", "--processes", "4", "--http-socket", f"fd://{fd}"]
        argv += ["--wsgi-file", str(tmp / "app.py"), "--master-fifo", str(fifo)]
        argv += ["--disable-logging", "--logto", str(tmp / f"log{n}")]
        proc = subprocess.Popen(argv, pass_fds=(fd,))
        while not fifo.exists():
            time.sleep(0.01)
        time.sleep(0.5)
        return proc, fifo

    def client() -> None:
        while not stop.is_set():
            data = b""
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                    while chunk := s.recv(4096):
                        data += chunk
            except OSError as exc:
                data = repr(exc).encode()
            good = data.startswith(b"HTTP/1.0 200")
            with lock:
                counts["ok" if good else "failed"] += 1
            if not good:
                print("failed:", data[:80], flush=True)

    proc, fifo = start(0)
    threads = [threading.Thread(target=client) for _ in range(16)]
    for t in threads:
        t.start()
    try:
        for n in range(1, cycles + 1):
            time.sleep(0.3)
            if mode == "pq":
                fifo.write_text("p")
                time.sleep(0.5)
            fifo.write_text("q")
            proc.wait(timeout=30)
            proc, fifo = start(n)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
        fifo.write_text("q")
        proc.wait(timeout=30)
        lsock.close()
        shutil.rmtree(tmp)
    print(f"{mode}: {cycles} stops, {counts['ok']} requests served, {counts['failed']} failed")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
