"""What the benchmarks need to know about the machine: how busy it is, and which cores to pin
the server under test and the load generator to, so that they do not take turns on one core.

A ratio taken while other jobs hold the cores is pressed towards 1 (node and ceiling are
slowed alike), so every benchmark records the load average before and after each round and
marks a round that began on a busy machine: one where, for the second before it, with the
benchmark's own servers idle, other processes kept more than a fifth of the cores busy. (The
load average alone cannot tell: it still carries the benchmark's own previous round for a
minute or more.)
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Any

BUSY = 0.2  # share of all cores others may keep busy before a round counts as busy


def load() -> float:
    return round(os.getloadavg()[0], 2)


def snapshot() -> dict[str, Any]:
    """Load average and CPU count now, for the results file."""
    return {"load": load(), "cpus": os.cpu_count()}


def busy_share(seconds: float = 1.0) -> float:
    """The share of all cores busy (not idle, not waiting on I/O) over the next ``seconds``,
    from /proc/stat; 0.0 where it is not available."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            fields = [int(f) for f in stat.readline().split()[1:]]
        idle = fields[3] + fields[4]  # idle, iowait
        return sum(fields), idle

    if not os.path.exists("/proc/stat"):
        return 0.0
    total, idle = sample()
    time.sleep(seconds)
    total2, idle2 = sample()
    spent = total2 - total
    return round(1 - (idle2 - idle) / spent, 3) if spent else 0.0


def check_quiet(label: str) -> dict[str, Any]:
    """A snapshot, with the share of the cores other processes kept busy for a second while
    the benchmark's servers were idle, and a loud warning when that is above :data:`BUSY`."""
    taken = snapshot()
    taken["others"] = busy_share()
    taken["busy"] = taken["others"] > BUSY
    if taken["busy"]:
        print(
            f"WARNING {label}: other processes kept {taken['others']:.0%} of the cores busy "
            f"before it began (load average {taken['load']}); its figures are marked busy and "
            "must not be quoted",
            flush=True,
        )
    return taken


def pinned(command: list[str], role: str) -> list[str]:
    """``command`` under ``taskset`` on its own core: ``server`` on core 0, ``generator`` on
    core 1 (unchanged on a one-core machine or without taskset)."""
    cpus = os.cpu_count() or 1
    if cpus < 2 or shutil.which("taskset") is None:
        return command
    return ["taskset", "--cpu-list", str(CORES[role]), *command]


CORES = {"server": 0, "generator": 1}


def generator_core(pid: int) -> None:
    """Move process ``pid`` (a benchmark that generates load itself) to the generator's core."""
    if (os.cpu_count() or 1) >= 2 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(pid, {CORES["generator"]})


def _stat(pid: int | str) -> tuple[int, float]:
    """Process ``pid``'s parent and the CPU time (user + system) it has used, from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) process ``pid`` alone has used so far."""
    return _stat(pid)[1]


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by process ``pid`` and all its descendants (a
    server's workers), from /proc; 0.0 where /proc is not available."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            parents[int(entry)], times[int(entry)] = _stat(entry)
        except OSError:
            continue  # gone meanwhile
    tree, grew = {pid}, True
    while grew:
        found = {child for child, parent in parents.items() if parent in tree} - tree
        tree |= found
        grew = bool(found)
    return sum(times.get(member, 0.0) for member in tree)
