"""Tasks for the process-pool tests of thalia.inference.group, in a module without heavy imports so
that a spawned worker process starts in a fraction of a second."""

from __future__ import annotations

import os


def square_or_die(x, marker):
    """x², but the first call with x == 0 kills its process (as a worker killed mid-task)."""
    if x == 0 and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return x * x
