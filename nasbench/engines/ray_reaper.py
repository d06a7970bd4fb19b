"""The helper process that makes sure no Ray process outlives the command that started a local Ray.

``ray_tune.ray_session`` starts it (``python -m nasbench.engines.ray_reaper [ALIAS_DIR]``) with a pipe on
its stdin. Until that pipe closes (the session ended, or the driver died, even by SIGKILL) it notes, every
second, the Ray processes descended from the driver (pid and start time); then it ends those still alive
(SIGTERM, then SIGKILL) and removes the socket alias folder it was given. After a SIGKILLed driver, Ray's
raylet and GCS exit but the dashboard and runtime-env agents (children of the raylet) live on, hence this.
(An environment marker cannot find them: setproctitle overwrites the environment that /proc shows.)

Linux only (it reads /proc). It imports nothing from Ray, so it starts fast and survives Ray's exit.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import sys
import time

POLL_S = 1.0
GRACE_S = 2.0  # between SIGTERM and SIGKILL


def _processes() -> tuple[dict[int, tuple[bytes, bytes]], dict[int, list[int]]]:
    """pid -> (start time, command line), and parent pid -> child pids, from /proc."""
    procs: dict[int, tuple[bytes, bytes]] = {}
    kids: dict[int, list[int]] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read().rsplit(b")", 1)[1].split()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                procs[int(pid)] = (stat[19], f.read())
            kids.setdefault(int(stat[1]), []).append(int(pid))
        except (OSError, IndexError):
            pass
    return procs, kids


def note_ray_descendants(driver: int, seen: dict[int, bytes]) -> dict[int, tuple[bytes, bytes]]:
    """Add the Ray processes under ``driver`` (or under one already seen) to ``seen``; returns /proc's view."""
    procs, kids = _processes()
    me = os.getpid()
    stack = [driver, *seen]
    while stack:
        for pid in kids.get(stack.pop(), []):
            start, cmd = procs[pid]
            if pid != me and pid not in seen and (b"ray::" in cmd or b"/ray/" in cmd):
                seen[pid] = start
                stack.append(pid)
    return procs


def end_all(driver: int, seen: dict[int, bytes]) -> None:
    """SIGTERM, then SIGKILL, every seen process still alive (same pid and start time)."""
    for sig, grace in ((signal.SIGTERM, GRACE_S), (signal.SIGKILL, 0.0)):
        procs = note_ray_descendants(driver, seen)
        alive = [pid for pid, start in seen.items() if pid in procs and procs[pid][0] == start]
        for pid in alive:
            with contextlib.suppress(OSError):
                os.kill(pid, sig)
        if alive:
            time.sleep(grace)


def main(argv: list[str]) -> None:
    driver, seen = os.getppid(), {}
    while not select.select([0], [], [], POLL_S)[0] or os.read(0, 1):
        note_ray_descendants(driver, seen)
    end_all(driver, seen)
    if argv:
        shutil.rmtree(argv[0], ignore_errors=True)  # the socket alias's folder


if __name__ == "__main__":
    main(sys.argv[1:])
