"""uWSGI 2.0's graceful signal to a worker and connections it has just accepted.

A held listening socket (as the supervisor or systemd holds it) is served by
uWSGI while 16 client threads keep it busy. Each cycle signals the workers
one of these ways:

  q   `q` on the master FIFO, then the next master on the same socket
  pq  `p`, 0.5 s, then `q` (what a stop sends: machine.PAUSE_SETTLE)
  r   `r`: a graceful reload in place (the master re-execs)
  pr  `p`, 0.5 s, then `r` (what a graceful reload sends)
  c   `c`: a chain reload (lazy-apps), one worker after another

Connections that arrive while no worker takes them wait in the socket's
queue, so every failed request is one a signalled worker dropped. Run:

  .venv/bin/python bench/probes/stop_race.py q 120
  .venv/bin/python bench/probes/stop_race.py pq 120
  .venv/bin/python bench/probes/stop_race.py c 60 --threads 2

`--threads N` runs N threads per worker (uWSGI's handler then lets an
accepted connection finish instead of exiting at once).

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


def main(mode: str, cycles: int, threads: int) -> None:
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
        if mode == "c":
            argv += ["--lazy-apps"]
        if threads > 1:
            argv += ["--threads", str(threads)]
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
    clients = [threading.Thread(target=client) for _ in range(16)]
    for t in clients:
        t.start()
    try:
        for n in range(1, cycles + 1):
            time.sleep(0.3)
            if mode in ("pq", "pr"):
                fifo.write_text("p")
                time.sleep(0.5)
            fifo.write_text(mode[-1])
            if mode[-1] == "q":
                proc.wait(timeout=30)
                proc, fifo = start(n)
            else:
                time.sleep(2.0)  # the reload done: a paused master would fail requests here
        time.sleep(0.5)
    finally:
        stop.set()
        for t in clients:
            t.join()
        fifo.write_text("q")
        proc.wait(timeout=30)
        lsock.close()
        shutil.rmtree(tmp)
    print(
        f"{mode}, {threads} thread(s) per worker: {cycles} cycles,"
        f" {counts['ok']} requests served, {counts['failed']} failed"
    )


if __name__ == "__main__":
    args = sys.argv[1:]
    nthreads = 1
    if "--threads" in args:
        i = args.index("--threads")
        nthreads = int(args[i + 1])
        del args[i : i + 2]
    main(args[0], int(args[1]), nthreads)
