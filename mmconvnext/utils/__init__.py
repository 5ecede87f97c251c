from .process_memory import fix_malloc_thresholds, peak_rss_bytes, reset_peak_rss, rss_bytes
from .safe_checkpoint_globals import allow_mmengine_checkpoint_globals
from .upstream_warnings import ignore_upstream_deprecations, quiet_upstream_log_notes

__all__ = [
    'allow_mmengine_checkpoint_globals', 'fix_malloc_thresholds', 'ignore_upstream_deprecations',
    'peak_rss_bytes',
    'quiet_upstream_log_notes', 'reset_peak_rss', 'rss_bytes'
]
