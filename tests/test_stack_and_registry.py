"""The installed OpenMMLab stack works, and mmconvnext's registries resolve from mmdet / mmseg."""
import subprocess
import sys

import pytest
import torch


def test_stack_imports_with_compiled_ops():
    import mmcv
    import mmdet.models  # noqa: F401
    import mmpretrain  # noqa: F401
    import mmseg.models  # noqa: F401
    import timm  # noqa: F401
    from mmcv.ops import RoIAlign, nms
    assert mmcv.__version__ == '2.1.0'
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])
    dets, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), iou_threshold=0.5)
    assert keep.tolist() == [0, 2]
    feats = torch.arange(64.).reshape(1, 1, 8, 8)
    rois = torch.tensor([[0., 0., 0., 3., 3.]])
    pooled = RoIAlign((2, 2), spatial_scale=1., sampling_ratio=1, aligned=False)(feats, rois)
    assert pooled.shape == (1, 1, 2, 2) and torch.isfinite(pooled).all()


def run_fresh(code):
    """Run ``code`` in a fresh interpreter; return its stdout (fails the test on error)."""
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg'])
def test_scoped_type_builds_without_importing_mmconvnext(scope):
    out = run_fresh(f"""
import sys
from mmengine.registry import init_default_scope
from {scope}.registry import MODELS
init_default_scope('{scope}')
assert 'mmconvnext' not in sys.modules
model = MODELS.build(dict(type='mmconvnext.ConvNeXt', arch='atto', out_indices=(3,)))
print(type(model).__module__, model.out_channels)
""")
    assert out.split() == ['mmconvnext.models.backbones.convnext', '[320]']


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg'])
def test_bare_type_in_downstream_scope_after_custom_imports(scope):
    out = run_fresh(f"""
from mmengine.config import Config
from mmengine.registry import init_default_scope
from {scope}.registry import MODELS
cfg = Config(dict(custom_imports=dict(imports=['mmconvnext'], allow_failed_imports=False),
                  backbone=dict(type='ConvNeXt', arch='femto')))
init_default_scope('{scope}')
from mmengine.utils import import_modules_from_strings
import_modules_from_strings(**cfg.custom_imports)
print(type(MODELS.build(cfg.backbone)).__module__)
""")
    assert out.strip() == 'mmconvnext.models.backbones.convnext'


def test_unknown_scoped_type_names_the_key():
    from mmdet.registry import MODELS
    with pytest.raises(KeyError, match='NoSuchNet'):
        MODELS.build(dict(type='mmconvnext.NoSuchNet'))
