from .process_memory import peak_rss_bytes, reset_peak_rss, rss_bytes
from .safe_checkpoint_globals import allow_mmengine_checkpoint_globals

__all__ = ['allow_mmengine_checkpoint_globals', 'peak_rss_bytes', 'reset_peak_rss', 'rss_bytes']
