"""The backbone on CUDA (marker ``cuda``; skipped where torch sees no GPU).

- fp32, training mode: the outputs, the input gradient and every parameter gradient equal a
  float64 CPU copy's, through the ops CUDA runs by default and through each op of
  :mod:`~mmconvnext.models.backbones.convnext_ops` with its own path switched on for CUDA
  (:func:`~mmconvnext.models.backbones.convnext_ops.own_paths`). TF32 is off here: it is
  an approximation of fp32 by design (about 1e-3 relative).
- fp16 / bf16 autocast training steps: finite, and close to the fp32 step.
No mmcv ops are needed (the device check runs these before mmcv's CUDA build).
"""
import copy

import pytest
import torch
from tiny_runs import relative_error

from mmconvnext.models import ConvNeXt
from mmconvnext.models.backbones.convnext_ops import own_paths

pytestmark = pytest.mark.cuda


@pytest.fixture(autouse=True)
def exact_fp32():
    """Plain fp32 matrix products and convolutions (no TF32) during the test."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def atto(version, layer_scale=1e-6):
    """ConvNeXt-atto, V1 or V2, in training mode, random weights (seed 0); the GRN gamma /
    beta random too, so that the V2 block's GRN is not the identity."""
    torch.manual_seed(0)
    v2 = version == 'v2'
    model = ConvNeXt('atto', use_grn=v2, layer_scale_init_value=0 if v2 else layer_scale)
    if v2:
        with torch.no_grad():
            for stage in model.stages:
                for block in stage:
                    block.grn.gamma.normal_(0, .5)
                    block.grn.beta.normal_(0, .1)
    return model.train()


def training_step(model, x, probes, autocast_dtype=None):
    """Outputs and {name: gradient} ('input' and every parameter) of ``sum(out * probe)``."""
    x = x.clone().requires_grad_()
    model.zero_grad(set_to_none=True)
    with torch.autocast('cuda', dtype=autocast_dtype, enabled=autocast_dtype is not None):
        outs = model(x)
        loss = sum((out.float() * probe).sum() for out, probe in zip(outs, probes))
    loss.backward()
    grads = {'input': x.grad}
    grads.update((name, param.grad) for name, param in model.named_parameters())
    return outs, grads


def reference_and_cuda_steps(model, autocast_dtype=None):
    """(float64 CPU step, CUDA step) of copies of ``model`` on one channels_last input."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 96, 128, generator=gen)
    with torch.no_grad():
        shapes = [out.shape for out in copy.deepcopy(model).eval()(x)]
    probes = [torch.randn(shape, generator=gen) for shape in shapes]
    reference = training_step(copy.deepcopy(model).double(), x.double(),
                              [probe.double() for probe in probes])
    cuda_model = copy.deepcopy(model).cuda().to(memory_format=torch.channels_last)
    cuda = training_step(cuda_model, x.cuda().contiguous(memory_format=torch.channels_last),
                         [probe.cuda() for probe in probes], autocast_dtype)
    return reference, cuda


@pytest.mark.parametrize('paths', ['default', 'own'])
@pytest.mark.parametrize('version', ['v1', 'v2'])
def test_fp32_training_step_equals_float64_cpu_reference(version, paths):
    if paths == 'own':
        with own_paths('cuda'):
            (ref_outs, ref_grads), (outs, grads) = reference_and_cuda_steps(atto(version))
    else:
        (ref_outs, ref_grads), (outs, grads) = reference_and_cuda_steps(atto(version))
    for out, ref in zip(outs, ref_outs):
        assert out.is_cuda and out.dtype == torch.float32
        assert relative_error(out, ref) < 1e-5
    assert grads.keys() == ref_grads.keys()
    errors = {name: relative_error(grads[name], ref_grads[name]) for name in ref_grads}
    worst = max(errors, key=errors.get)
    assert errors[worst] < 1e-4, f'{worst}: relative error {errors[worst]:.2e}'


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16], ids=['fp16', 'bf16'])
@pytest.mark.parametrize('version', ['v1', 'v2'])
def test_autocast_training_step_is_finite_and_close_to_fp32(version, dtype):
    model = atto(version, layer_scale=1.)  # trained-like scale: no loss scaling needed
    (ref_outs, ref_grads), (outs, grads) = reference_and_cuda_steps(model, dtype)
    tolerance = 2e-2 if dtype == torch.float16 else 5e-2
    for out, ref in zip(outs, ref_outs):
        assert torch.isfinite(out).all()
        assert relative_error(out, ref) < tolerance
    for name, grad in grads.items():
        assert torch.isfinite(grad).all(), name
    errors = {name: relative_error(grads[name], ref_grads[name]) for name in ref_grads}
    worst = max(errors, key=errors.get)
    assert errors[worst] < 5 * tolerance, f'{worst}: relative error {errors[worst]:.2e}'
