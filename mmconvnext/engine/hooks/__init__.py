from .lr_range_hook import LrRangeHook

__all__ = ['LrRangeHook']
