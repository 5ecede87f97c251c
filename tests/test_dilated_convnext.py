"""ConvNeXt(output_stride=16 | 8) against timm's dilated ConvNeXt, and its contract.

timm builds the reference (random weights, saved in timm's checkpoint format and loaded through
our ``init_cfg``); every parameter is randomised, layer scales and GRN included, so no block is
near the identity. Outputs are compared after a LayerNorm over channels (ours are normalised by
the fresh output norms ``norm{i}``, weight 1, bias 0), on an odd-sized image.
"""
import pytest
import timm
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmconvnext.engine.optimizers import LearningRateDecayOptimizerConstructor
from mmconvnext.models import ConvNeXt
from mmconvnext.models.backbones.checkpoint_formats import convert_state_dict

#: fp32 tolerance of the comparison: max |ours - timm| / max |timm|
MAX_REL_ERR = 1e-4
#: (timm name, our kwargs): a V1 and a V2 arch
ARCHS = [('convnext_atto', dict(arch='atto')),
         ('convnextv2_atto', dict(arch='atto', use_grn=True, layer_scale_init_value=0.))]
ODD_IMAGE = (1, 3, 75, 101)  # (N, C, H, W): every size on the way is odd or floored


def random_timm_model(name, output_stride, path):
    """timm's ``name`` at ``output_stride`` with every parameter random; saved to ``path``."""
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, output_stride=output_stride)
    with torch.no_grad():
        for key, param in model.named_parameters():
            if 'norm' in key and key.endswith('weight'):
                param.uniform_(0.5, 1.5)
            else:
                param.normal_(std=0.3 if param.dim() == 1 else 0.1)
    torch.save(model.state_dict(), path)
    return model


def timm_features(model, x):
    """timm's four stage outputs, normalised over channels as our fresh output norms do."""
    x = model.stem(x)
    feats = []
    for stage in model.stages:
        x = stage(x)
        feats.append(F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], eps=1e-6)
                     .permute(0, 3, 1, 2))
    return feats


def max_rel_err(actual, expected):
    return ((actual - expected).abs().max() / expected.abs().max()).item()


@pytest.mark.usefixtures('single_thread')
@pytest.mark.parametrize('output_stride', [16, 8])
@pytest.mark.parametrize('timm_name, kwargs', ARCHS, ids=[name for name, _ in ARCHS])
def test_outputs_and_gradients_equal_timm(timm_name, kwargs, output_stride, tmp_path):
    path = tmp_path / f'{timm_name}.pth'
    reference = random_timm_model(timm_name, output_stride, path).train()
    ours = ConvNeXt(**kwargs, output_stride=output_stride,
                    init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    ours.init_weights()
    ours.train()  # the CPU training ops (dilated depthwise convs: the framework's)
    x = torch.randn(ODD_IMAGE)
    weights = [torch.randn(feat.shape[1:]) for feat in ours.eval()(x)]
    ours.train()

    outs = {}
    runs = {'ours': (ours, ours), 'timm': (reference, lambda x: timm_features(reference, x))}
    for name, (model, run) in runs.items():
        image = x.clone().requires_grad_()
        feats = run(image)
        sum((feat * weight).sum() for feat, weight in zip(feats, weights)).backward()
        outs[name] = feats, image.grad, {key: param.grad for key, param in
                                         model.named_parameters()}

    (our_feats, our_x_grad, our_grads), (feats, x_grad, grads) = outs['ours'], outs['timm']
    assert ours.out_strides == [4, 8, min(16, output_stride), output_stride]
    assert [tuple(feat.shape[2:]) for feat in feats] == [
        (ODD_IMAGE[2] // stride, ODD_IMAGE[3] // stride) for stride in ours.out_strides]
    for our_feat, feat in zip(our_feats, feats):
        assert our_feat.shape == feat.shape
        assert max_rel_err(our_feat, feat) <= MAX_REL_ERR
    assert max_rel_err(our_x_grad, x_grad) <= MAX_REL_ERR
    timm_grads, _ = convert_state_dict(grads)  # timm names and shapes -> ours
    assert len(timm_grads) == len(our_grads) - 8  # all but the output norms norm{i}
    for key, grad in timm_grads.items():
        assert max_rel_err(our_grads[key], grad) <= MAX_REL_ERR, key


@pytest.mark.parametrize('output_stride, strides, dilations', [
    (32, [4, 8, 16, 32], [1, 1, 1, 1]),
    (16, [4, 8, 16, 16], [1, 1, 1, 2]),
    (8, [4, 8, 8, 8], [1, 1, 2, 4]),
])
def test_out_strides_hold_against_real_outputs(output_stride, strides, dilations):
    model = ConvNeXt('atto', output_stride=output_stride).eval()
    height, width = ODD_IMAGE[2:]
    with torch.no_grad():
        outs = model(torch.randn(ODD_IMAGE))
    assert model.out_strides == strides
    assert [tuple(out.shape[2:]) for out in outs] == [(height // s, width // s) for s in strides]
    assert [stage[0].dwconv.dilation[0] for stage in model.stages] == dilations
    subset = ConvNeXt('atto', out_indices=(1, 3), output_stride=output_stride)
    assert subset.out_strides == [strides[1], strides[3]]


def test_parameters_are_those_of_the_undilated_network():
    shapes = {key: value.shape for key, value in ConvNeXt('atto').state_dict().items()}
    for output_stride in (16, 8):
        dilated = ConvNeXt('atto', output_stride=output_stride).state_dict()
        assert {key: value.shape for key, value in dilated.items()} == shapes


@pytest.mark.usefixtures('single_thread')
def test_with_cp_frozen_stages_and_drop_path_keep_working_dilated():
    torch.manual_seed(0)
    plain = ConvNeXt('atto', output_stride=8, layer_scale_init_value=1., frozen_stages=1,
                     drop_path_rate=0.2).train()
    ckpt = ConvNeXt('atto', output_stride=8, layer_scale_init_value=1., frozen_stages=1,
                    drop_path_rate=0.2, with_cp=True).train()
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 64)
    for model in (plain, ckpt):
        torch.manual_seed(1)  # the same drop-path draws
        sum(out.square().mean() for out in model(x)).backward()
    for (name, p), q in zip(plain.named_parameters(), ckpt.parameters()):
        frozen = name.startswith(('downsample_layers.0.', 'stages.0.'))
        assert p.requires_grad != frozen and (p.grad is None) == frozen, name
        if not frozen:
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_layer_decay_groups_are_those_of_the_undilated_network():
    def lr_and_decay(output_stride):
        holder = nn.Module()
        holder.backbone = ConvNeXt('atto', output_stride=output_stride)
        wrapper = LearningRateDecayOptimizerConstructor(
            dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05)),
            dict(decay_rate=0.7, decay_type='layer_wise'))(holder)
        names = {id(param): name for name, param in holder.named_parameters()}
        return {names[id(param)]: (group['lr'], group['weight_decay'])
                for group in wrapper.optimizer.param_groups for param in group['params']}

    undilated = lr_and_decay(32)
    assert len(undilated) == len(list(ConvNeXt('atto').parameters()))
    assert lr_and_decay(8) == lr_and_decay(16) == undilated


@pytest.mark.parametrize('output_stride', [4, 12, 64, '16', None])
def test_bad_output_stride_is_refused_naming_the_valid_ones(output_stride):
    with pytest.raises(ValueError, match=rf'output_stride={output_stride!r} is invalid; valid: '
                                         '8, 16, 32'):
        ConvNeXt('atto', output_stride=output_stride)
