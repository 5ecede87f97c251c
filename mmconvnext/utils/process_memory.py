"""Resident memory of the current process, in bytes, read from Linux ``/proc/self``, and glibc's
allocator settings that decide how much freed memory it keeps."""
import ctypes
import ctypes.util
import resource


def rss_bytes():
    """Current resident set size (RSS) of this process, in bytes."""
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def reset_peak_rss():
    """Reset this process's peak RSS (``VmHWM``) to its current RSS (Linux >= 4.0)."""
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')


def peak_rss_bytes():
    """Peak RSS (``VmHWM``) of this process since its start or the last reset, in bytes."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) * 1024
    raise RuntimeError('/proc/self/status has no VmHWM line (not Linux?)')


#: glibc's ``mallopt`` parameters (``<malloc.h>``).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3


def fix_malloc_thresholds(mmap_threshold=128 * 1024, trim_threshold=128 * 1024):
    """Set glibc's mmap and trim thresholds (bytes; defaults: glibc's starting values), which
    turns off their growth. Returns False where the C library is not glibc.

    glibc serves an allocation of ``mmap_threshold`` bytes or more with its own ``mmap`` and
    returns it on ``free``, but each such ``free`` raises the threshold to that size (up to
    32 MiB), so later tensors come from its arenas, which keep freed memory for reuse.
    """
    libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
    mallopt = getattr(libc, 'mallopt', None)
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold) and
                mallopt(M_TRIM_THRESHOLD, trim_threshold))
