"""The process's descriptor table, grown once at start-up (`sserelay serve`, and the
benchmark's upstream).

Linux doubles a process's descriptor table when a new descriptor does not fit it (64, 128,
256... entries). In a process with more than one thread (the usage writer's, libuv's) it
then waits for an RCU grace period before freeing the old table, and the call that needed
the descriptor waits with it: on these VMs the event loop's `accept4` or `socket` blocked
for 10-20 ms, every stream with it, each time 500 streams starting together crossed 256,
512 and 1024 descriptors (docs/decisions.md, "The descriptor table, grown once"). The table
never shrinks, so growing it before any of that costs one copy and nothing after.

The soft limit on open files is raised to the hard one first, as Go's runtime does for
every program: the common soft default, 1,024, would hold ~500 streams, and a relay at the
limit fails new connections however much memory it has left.

The Flask and Django integrations leave it alone: the process is theirs.
"""

from __future__ import annotations

import fcntl
import os
import resource
import sys

__all__ = ["DESCRIPTOR_TABLE", "reserve_descriptors"]

# Two sockets a stream, for 32,000 streams, in 512 KiB of kernel memory; or the process's
# limit, if that is lower.
DESCRIPTOR_TABLE = 65_536
_NEW_PROCESS_TABLE = 64


def reserve_descriptors(size: int = DESCRIPTOR_TABLE) -> None:
    """Raise the soft limit on open files to the hard one, then grow the descriptor table
    to `size` entries, or to that limit if lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (OSError, ValueError):  # e.g. a hard limit above the kernel's nr_open
            pass
    top = size if soft == resource.RLIM_INFINITY else min(soft, size)
    if top <= _NEW_PROCESS_TABLE:
        return
    # F_DUPFD takes the lowest free descriptor from `top - 1` up, so it never replaces one
    # in use; the copy is closed at once and the table stays as large.
    try:
        spare = fcntl.fcntl(sys.stderr.fileno(), fcntl.F_DUPFD_CLOEXEC, top - 1)
    except (OSError, ValueError, AttributeError):  # no stderr, nothing free below the limit
        return
    os.close(spare)
