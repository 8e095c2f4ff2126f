"""Keep freed memory in the process on glibc, so big CPU tensors do not page-fault every step.

glibc serves allocations above its mmap threshold (at most 32 MB) with fresh mmap()s and
returns them to the kernel on free(); a CPU training step allocates and frees the same large
activations every iteration, and each fresh mapping is zero-filled page by page. On the
full-size AEGAN at batch 32 that was a fifth of the step in system time. Turning mmap off
for the heap and never trimming it keeps those pages mapped and reused.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

#: glibc mallopt parameters (malloc.h).
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
#: Set to "default" to leave the allocator as it is.
ENV = "CYCLEGEN_MALLOC"


def keep_freed_memory() -> bool:
    """Tune glibc's allocator for training; returns whether it was tuned (Linux glibc only)."""
    if os.environ.get(ENV) == "default" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))  # a C int
