"""Test-time augmentation whose views the segmentor infers in another mode than its single-scale
test: the ConvNeXt paper's "mIoU (ms+flip)" protocol.

The official ADE20K configs test single-scale with 512 (640) sliding windows (``*_ss.py``), but
their multi-scale + flip figures come from ``*_ms.py`` with ``--aug-test``: the whole resized
image through the network at each scale (``test_cfg=dict(mode='whole')``). mmseg's
``SegTTAModel`` runs every view with the wrapped segmentor's own ``test_cfg``, so this subclass
replaces that ``test_cfg`` for the augmented test only; merging (the mean of the views'
softmax scores, flips undone, then argmax) is mmseg's.
"""
from mmengine.config import ConfigDict
from mmseg.models.segmentors import SegTTAModel

from mmconvnext.registry import MODELS


@MODELS.register_module()
class SegTTAModelWithTestCfg(SegTTAModel):
    """mmseg's ``SegTTAModel`` whose segmentor infers every view with ``test_cfg``.

    Args:
        module (dict | nn.Module): the segmentor (``tools/test.py --tta`` passes the config's
            ``model``).
        test_cfg (dict): replaces the segmentor's ``test_cfg`` for the augmented test, e.g.
            ``dict(mode='whole')``.
        data_preprocessor (dict, optional): as in ``BaseTTAModel``.
    """

    def __init__(self, module, test_cfg, data_preprocessor=None):
        super().__init__(module, data_preprocessor)
        if not hasattr(self.module, 'test_cfg'):
            raise TypeError(f'{type(self.module).__name__} has no test_cfg to replace')
        self.module.test_cfg = ConfigDict(test_cfg)
