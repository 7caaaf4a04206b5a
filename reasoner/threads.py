"""OpenMP thread placement for CPU runs.

The learner and the in-process vLLM engine share one OpenMP thread pool. Unpinned, its
threads migrate between cores and wait for each other at every barrier whenever anything else
runs on the machine; pinned one per core they do not. Measured on a 2-core machine under a
load of 3-4 from other processes: vLLM sampling 165 generated tokens/s pinned vs 32 unpinned
(docs/benchmarks.md). OpenMP reads these variables once, when the runtime loads (at
``import torch``), so this must run before that.
"""

from __future__ import annotations

import os

_PEERS = ("LOCAL_WORLD_SIZE", "WORLD_SIZE")


def pin_openmp_threads() -> bool:
    """Set ``OMP_PROC_BIND=true`` and ``OMP_PLACES=cores`` unless the user set them, or several
    processes share this machine (each would pin its threads to the same cores). Returns
    whether it pinned."""
    if any(k in os.environ for k in ("OMP_PROC_BIND", "OMP_PLACES")):
        return False
    if any(int(os.environ.get(k, "1") or 1) > 1 for k in _PEERS):
        return False
    os.environ["OMP_PROC_BIND"] = "true"
    os.environ["OMP_PLACES"] = "cores"
    return True
