"""fp16 inference with large activations (``model.half()``), on CPU and on CUDA (marker ``cuda``).

A trained ConvNeXt's residual stream reaches thousands; in fp16 a LayerNorm that squares
deviations itself (the official channels-first one: ``(x - u).pow(2)``) overflows past |x - u| =
256, and V2's GRN, an L2 norm over the (H, W) map, past 65504. Here the blocks' first 1x1 layers
are amplified until the fp32 model has such activations (checked, so the test cannot pass on
small ones); the fp16 model must stay finite and close to fp32, its statistics being computed
in fp32 (``F.layer_norm``, :class:`~mmconvnext.models.backbones.convnext.GRN`).
"""
import pytest
import torch
from tiny_runs import relative_error

from mmconvnext.models import ConvNeXt
from mmconvnext.models.backbones.convnext import GRN

FP16_MAX = torch.finfo(torch.float16).max
#: Factor on every block's first 1x1 weight: residual streams of ~2e4, GRN input norms ~1.4e5.
GAIN = 2e4
DEVICES = ['cpu', pytest.param('cuda', marks=pytest.mark.cuda)]


def amplified_atto(version):
    """ConvNeXt-atto (eval) whose blocks produce large activations; V1 with layer scale 1,
    V2 with random GRN gamma / beta (std 0.1)."""
    torch.manual_seed(0)
    v2 = version == 'v2'
    model = ConvNeXt('atto', use_grn=v2, layer_scale_init_value=0 if v2 else 1.)
    with torch.no_grad():
        for stage in model.stages:
            for block in stage:
                block.pwconv1.weight.mul_(GAIN)
                if v2:
                    block.grn.gamma.normal_(0, .1)
                    block.grn.beta.normal_(0, .1)
    return model.eval()


def largest_statistics(model, x):
    """(largest |x - channel mean| of a stage output, largest GRN input L2 norm over (H, W)) of
    the fp32 model on ``x``, and its outputs."""
    found = dict(deviation=0., grn_norm=0.)

    def stage_output(module, inputs, out):
        deviation = (out - out.mean(1, keepdim=True)).abs().max().item()
        found['deviation'] = max(found['deviation'], deviation)

    def grn_input(module, inputs):
        norm = torch.linalg.vector_norm(inputs[0].float(), dim=(1, 2)).max().item()
        found['grn_norm'] = max(found['grn_norm'], norm)

    handles = [stage.register_forward_hook(stage_output) for stage in model.stages]
    handles += [module.register_forward_pre_hook(grn_input) for module in model.modules()
                if isinstance(module, GRN)]
    with torch.no_grad():
        outs = model(x)
    for handle in handles:
        handle.remove()
    return found, outs


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('version', ['v1', 'v2'])
def test_half_inference_with_large_activations_stays_finite(version, device):
    model = amplified_atto(version).to(device)
    x = torch.randn(1, 3, 128, 128, device=device)
    found, ref = largest_statistics(model, x)
    assert found['deviation']**2 > FP16_MAX  # an fp16 (x - u)^2 would overflow
    if version == 'v2':
        assert found['grn_norm'] > FP16_MAX  # an fp16 L2 norm would overflow
    with torch.no_grad():
        outs = model.half()(x.half())
    for out, expected in zip(outs, ref):
        assert out.dtype == torch.float16 and torch.isfinite(out).all()
        assert relative_error(out, expected) < 1e-2


def test_grn_statistics_in_fp32_for_fp16_input():
    grn = GRN(4).half()
    with torch.no_grad():
        grn.gamma.fill_(.5)
    x = torch.full((1, 32, 32, 4), 4000., dtype=torch.float16)  # L2 norm 128000 per channel
    x[..., 0] = 2000.
    out = grn(x)
    expected = GRN(4)
    expected.load_state_dict(grn.float().state_dict())
    assert out.dtype == torch.float16 and torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), expected(x.float()), rtol=2e-3, atol=0)
