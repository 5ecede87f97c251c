"""Resident memory of the current process, in bytes, read from Linux ``/proc/self``."""
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
