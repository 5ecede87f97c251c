"""ConvNeXt backbone: shapes, layout, freezing, checkpointing, drop path and argument errors.

Numerical equivalence with timm / mmpretrain / torchvision / HF lives in test_checkpoint_formats.
"""
import pytest
import torch
import torch.nn as nn

from mmconvnext.models import ConvNeXt
from mmconvnext.models.backbones.arch_settings import ARCH_SETTINGS

SMALL_ARCHS = ['atto', 'femto', 'pico', 'nano', 'tiny']


@pytest.mark.parametrize('arch', SMALL_ARCHS)
def test_pyramid_shapes_and_out_channels(arch):
    model = ConvNeXt(arch).eval()
    depths, channels = ARCH_SETTINGS[arch]
    with torch.no_grad():
        outs = model(torch.randn(2, 3, 64, 96))
    assert model.out_channels == list(channels)
    assert [tuple(o.shape) for o in outs] == [
        (2, c, 64 // s, 96 // s) for c, s in zip(channels, (4, 8, 16, 32))]
    assert [len(stage) for stage in model.stages] == list(depths)


def test_official_parameter_layout_v1_and_v2():
    v1 = set(ConvNeXt('atto').state_dict())
    assert {'downsample_layers.0.0.weight', 'downsample_layers.0.1.weight',
            'downsample_layers.1.0.weight', 'downsample_layers.1.1.weight',
            'stages.2.5.dwconv.weight', 'stages.2.5.norm.weight', 'stages.2.5.pwconv1.weight',
            'stages.2.5.pwconv2.bias', 'stages.2.5.gamma', 'norm0.weight', 'norm3.bias'} <= v1
    assert not any('grn' in k for k in v1)
    v2 = ConvNeXt('atto', use_grn=True, layer_scale_init_value=0.).state_dict()
    assert v2['stages.0.0.grn.gamma'].shape == (160, )
    assert v2['stages.0.0.grn.beta'].shape == (160, )
    assert not any(k.endswith('gamma') and 'grn' not in k for k in v2)
    # the stem is conv then norm; later downsampling layers are norm then conv
    model = ConvNeXt('atto')
    assert isinstance(model.downsample_layers[0][0], nn.Conv2d)
    assert isinstance(model.downsample_layers[1][0], nn.LayerNorm)


def test_custom_arch_dict_and_tiny_parameter_count():
    model = ConvNeXt(dict(depths=[1, 1, 2, 1], channels=[8, 16, 32, 64]))
    assert model.out_channels == [8, 16, 32, 64]
    # Paper Table 1: ConvNeXt-T has 28.6M parameters with its 1K head and final norm.
    tiny = ConvNeXt('tiny')
    backbone = sum(p.numel() for p in tiny.parameters())
    output_norms = 2 * sum(ARCH_SETTINGS['tiny'][1])
    with_head = backbone - output_norms + 2 * 768 + 768 * 1000 + 1000
    assert abs(with_head / 28.6e6 - 1) < 0.005


def test_out_indices_subset_builds_only_needed_stages():
    model = ConvNeXt('atto', out_indices=(1, 2))
    assert len(model.stages) == len(model.downsample_layers) == 3
    assert not hasattr(model, 'norm0') and not hasattr(model, 'norm3')
    outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [80, 160] == model.out_channels
    sum(o.sum() for o in outs).backward()
    assert all(p.grad is not None for p in model.parameters()), 'unused parameters under DDP'


def test_outputs_are_normalised_nchw():
    model = ConvNeXt('atto').eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 64))
    for out in outs:  # fresh output norms: zero mean, unit variance over channels
        torch.testing.assert_close(out.mean(1), torch.zeros_like(out.mean(1)), atol=1e-4,
                                   rtol=0)
        assert out.dim() == 4 and out.is_contiguous()


def test_mmcv_roi_align_reads_the_outputs_correctly():
    """mmcv's RoIAlign reads raw NCHW memory: channels_last outputs made Mask R-CNN's RoI
    features garbage (its RoI heads never learned). torchvision's roi_align honours strides."""
    from mmcv.ops import RoIAlign
    from torchvision.ops import roi_align
    model = ConvNeXt('atto').eval()
    rois = torch.tensor([[0., 4., 6., 50., 40.], [0., 20., 2., 60., 30.]])
    with torch.no_grad():
        feature = model(torch.randn(1, 3, 64, 64))[0]
        ours = RoIAlign((7, 7), spatial_scale=0.25, sampling_ratio=0, aligned=True)(feature, rois)
    reference = roi_align(feature, rois, (7, 7), spatial_scale=0.25, sampling_ratio=0,
                          aligned=True)
    torch.testing.assert_close(ours, reference)


@pytest.mark.parametrize('frozen_stages', [0, 1, 2, 4])
def test_frozen_stages_survive_train(frozen_stages):
    model = ConvNeXt('atto', frozen_stages=frozen_stages)
    model.train()
    frozen = [model.downsample_layers[i] for i in range(max(frozen_stages, 1))]
    frozen += list(model.stages[:frozen_stages])
    frozen_ids = {id(p) for m in frozen for p in m.parameters()}
    for module in frozen:
        assert not module.training
    for name, param in model.named_parameters():
        assert param.requires_grad == (id(param) not in frozen_ids), name
    if frozen_stages < 4:
        assert model.stages[frozen_stages].training
    assert all(p.requires_grad for p in model.norm0.parameters())


def test_norm_eval_keeps_norms_in_eval_mode():
    model = ConvNeXt('atto', norm_eval=True).train()
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    assert norms and not any(m.training for m in norms)
    assert model.stages[0][0].dwconv.training


def test_with_cp_gives_the_same_gradients():
    torch.manual_seed(0)
    plain = ConvNeXt('atto', layer_scale_init_value=1.).train()
    ckpt = ConvNeXt('atto', layer_scale_init_value=1., with_cp=True).train()
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 64)
    for model in (plain, ckpt):
        sum(o.square().mean() for o in model(x)).backward()
    for (name, p), q in zip(plain.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_stochastic_depth_rises_linearly_over_all_blocks():
    model = ConvNeXt('tiny', drop_path_rate=0.4)
    rates = [getattr(block.drop_path, 'drop_prob', 0.) for stage in model.stages
             for block in stage]
    assert len(rates) == 18
    torch.testing.assert_close(torch.tensor(rates), torch.linspace(0, 0.4, 18))
    model.eval()  # drop path is identity in eval
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x))


@pytest.mark.parametrize('kwargs, message', [
    (dict(arch='gigantic'), "Unknown ConvNeXt arch 'gigantic'; valid: atto, femto"),
    (dict(arch=dict(depths=[3, 3, 9], channels=[1, 2, 3])), 'Invalid ConvNeXt arch'),
    (dict(arch=dict(depths=[3, 3, 9, 3])), 'exactly the keys depths and channels'),
    (dict(out_indices=(0, 4)), 'out_indices=(0, 4) is invalid; valid: distinct stage indices'),
    (dict(out_indices=(-1, )), 'negative indices are not accepted'),
    (dict(out_indices=()), 'out_indices=() is invalid'),
    (dict(out_indices=(1, 1)), 'out_indices=(1, 1) is invalid'),
    (dict(frozen_stages=5), 'frozen_stages=5 is invalid; valid: -1 to 4'),
    (dict(frozen_stages=3, out_indices=(0, 1)), 'frozen_stages=3 is invalid; valid: -1 to 2'),
    (dict(frozen_stages=-2), 'frozen_stages=-2 is invalid'),
])
def test_bad_arguments_raise_value_error(kwargs, message):
    with pytest.raises(ValueError) as info:
        ConvNeXt(**kwargs)
    assert message in str(info.value)
