"""What tests and benchmarks share: waiting, loopback HTTP, nginx, load, /proc.

Tests import it as `kit` (pytest puts tests/ on sys.path); the benchmarks, run
from the repository root, as `tests.kit`. Its modules keep no state of their
own, so the two names never disagree about anything but exception identity:
catch `WaitTimeout` or `NginxMissing` through the same name that raised it.

- `wait`: `wait_until`, a deadline-bounded poll.
- `net`: `free_port`, `http_get`, `try_get`, `serves`.
- `nginx`: Debian's nginx on 127.0.0.1: `write_conf`, `nginx_check`, `running_nginx`.
- `load`: `Load`, threads sending GETs while something reloads.
- `procs`: /proc readings (`alive`, `children`, CPU, RSS) and `kill_pids`.
- `wrk`: wrk through nginx, its summary read back (`start`, `finish`).
"""
