from .backbones import ConvNeXt
from .segmentors import SegTTAModelWithTestCfg

__all__ = ['ConvNeXt', 'SegTTAModelWithTestCfg']
