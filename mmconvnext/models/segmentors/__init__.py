from .seg_tta_model import SegTTAModelWithTestCfg

__all__ = ['SegTTAModelWithTestCfg']
