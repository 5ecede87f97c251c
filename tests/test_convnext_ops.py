"""Block ops with hand-written backward (convnext_ops): outputs and gradients equal the plain
modules' autograd."""
import pytest
import torch
import torch.nn.functional as F

from mmconvnext.models import ConvNeXt
from mmconvnext.models.backbones import convnext_ops
from mmconvnext.models.backbones.convnext import Block
from mmconvnext.models.backbones.convnext_ops import depthwise_conv, norm_mlp, patchify_conv


def plain_block_forward(block, x):
    """The block as the paper writes it, every step an ordinary module under autograd."""
    y = block.dwconv(x).permute(0, 2, 3, 1)
    y = block.pwconv2(block.act(block.pwconv1(block.norm(y))))
    if block.gamma is not None:
        y = y * block.gamma
    return x + block.drop_path(y.permute(0, 3, 1, 2))


def mlp_inputs(with_gamma, channels=8, dtype=torch.float64):
    gen = torch.Generator().manual_seed(0)

    def rand(*shape, scale=1., shift=0.):
        return (shift + scale * torch.randn(*shape, generator=gen, dtype=dtype)).requires_grad_()

    c = channels
    return (rand(2, 3, 5, c), rand(c, scale=.1, shift=1.), rand(c, scale=.1),
            rand(4 * c, c, scale=.3),
            rand(4 * c, scale=.1), rand(c, 4 * c, scale=.3), rand(c, scale=.1),
            rand(c, scale=.5, shift=1.) if with_gamma else None)


@pytest.mark.parametrize('with_gamma', [True, False])
def test_norm_mlp_gradcheck_float64(with_gamma):
    x, nw, nb, w1, b1, w2, b2, gamma = mlp_inputs(with_gamma)
    params = [t for t in (nw, nb, w1, b1, w2, b2, gamma) if t is not None]

    def fused(x, nw, nb, w1, b1, w2, b2, *gamma):
        return norm_mlp(x, nw, nb, 1e-6, w1, b1, w2, b2, *gamma)

    assert torch.autograd.gradcheck(fused, (x, *params))
    plain = F.linear(F.gelu(F.linear(F.layer_norm(x, x.shape[-1:], nw, nb, 1e-6), w1, b1)), w2, b2)
    plain = plain if gamma is None else plain * gamma
    torch.testing.assert_close(fused(x, *params), plain, rtol=1e-12, atol=1e-12)
    with torch.no_grad():  # the inference path (in-place GELU, nothing stored)
        torch.testing.assert_close(fused(x, *params), plain, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('batch,kernel,with_bias', [(1, 7, True), (2, 7, True), (3, 3, False)])
def test_depthwise_conv_gradcheck_float64(batch, kernel, with_bias):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 4, 5, 6, dtype=torch.float64, generator=gen).requires_grad_()
    weight = torch.randn(4, 1, kernel, kernel, dtype=torch.float64, generator=gen)
    inputs = (x, weight.requires_grad_())
    if with_bias:
        inputs += (torch.randn(4, dtype=torch.float64, generator=gen).requires_grad_(), )
    assert torch.autograd.gradcheck(lambda x, w, b=None: depthwise_conv(x, w, b), inputs)


@pytest.mark.parametrize('memory_format', [torch.channels_last, torch.contiguous_format])
def test_depthwise_conv_grads_equal_framework_conv_fp32(memory_format):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 16, 20, 28, generator=gen).contiguous(memory_format=memory_format)
    conv = torch.nn.Conv2d(16, 16, 7, padding=3, groups=16)
    grad_out = torch.randn(2, 16, 20, 28, generator=gen)
    results = []
    for fn in (lambda x: depthwise_conv(x, conv.weight, conv.bias), conv):
        conv.zero_grad()
        inp = x.clone().requires_grad_()
        out = fn(inp)
        out.backward(grad_out)
        results.append([out, inp.grad, conv.weight.grad.clone(), conv.bias.grad.clone()])
    for ours, ref in zip(*results):
        torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5 * ref.abs().max().item())


def test_depthwise_conv_grads_only_where_required():
    x = torch.randn(1, 8, 9, 9)
    weight = torch.randn(8, 1, 7, 7, requires_grad=True)
    bias = torch.randn(8)
    depthwise_conv(x, weight, bias).sum().backward()
    assert weight.grad is not None and bias.grad is None and x.grad is None
    assert depthwise_conv(x, weight.detach(), bias).grad_fn is None  # nothing to differentiate


def test_norm_mlp_row_chunks_match_one_chunk(monkeypatch):
    """CPU runs the hidden activation in row chunks; 3 uneven chunks give the one-chunk result."""
    x, nw, nb, w1, b1, w2, b2, gamma = mlp_inputs(True, channels=4, dtype=torch.float32)
    results = []
    for numel in (10 ** 6, 16 * 12):  # 30 rows of width 16: one chunk; three of 10 rows
        monkeypatch.setattr(convnext_ops, 'HIDDEN_CHUNK_NUMEL', numel)
        args = [t.detach().clone().requires_grad_() for t in (x, nw, nb, w1, b1, w2, b2, gamma)]
        out = norm_mlp(args[0], *args[1:3], 1e-6, *args[3:])
        out.backward(torch.linspace(-1, 1, out.numel()).view_as(out))
        with torch.no_grad():
            inference = norm_mlp(args[0], *args[1:3], 1e-6, *args[3:])
        results.append([out, inference] + [a.grad for a in args])
    assert len(list(convnext_ops._row_chunks(x.reshape(-1, 4), 16))) == 3
    for chunked, whole in zip(results[1], results[0]):
        torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('rows', [4, 64])  # layer scale folded into W2 (4C <= M) or not
def test_norm_mlp_layer_scale_folded_or_applied_to_output(rows):
    _, nw, nb, w1, b1, w2, b2, gamma = mlp_inputs(True)
    x = torch.randn(rows, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1),
                    requires_grad=True)
    assert convnext_ops._SecondLinear(w2, b2, gamma, rows).folded == (rows >= 32)
    assert torch.autograd.gradcheck(
        lambda *t: norm_mlp(t[0], t[1], t[2], 1e-6, *t[3:]), (x, nw, nb, w1, b1, w2, b2, gamma))


def test_norm_mlp_grads_only_where_required():
    x, nw, nb, w1, b1, w2, b2, gamma = mlp_inputs(True, dtype=torch.float32)
    for frozen in (nw, nb, w1, b1):
        frozen.requires_grad_(False)
    norm_mlp(x, nw, nb, 1e-6, w1, b1, w2, b2, gamma).square().sum().backward()
    assert all(t.grad is not None for t in (x, w2, b2, gamma))
    assert all(t.grad is None for t in (nw, nb, w1, b1))


def backbone_pair(monkeypatch_plain, **kwargs):
    """(fused, plain) atto backbones with equal weights; plain runs ``plain_block_forward``."""
    torch.manual_seed(0)
    fused = ConvNeXt('atto', layer_scale_init_value=1., **kwargs).train()
    plain = ConvNeXt('atto', layer_scale_init_value=1., **kwargs).train()
    plain.load_state_dict(fused.state_dict())
    for block in plain.modules():
        if isinstance(block, Block):
            monkeypatch_plain.setattr(block, 'forward',
                                      lambda x, block=block: plain_block_forward(block, x))
    return fused, plain


def assert_same_grads(fused, plain, seed=0):
    """Outputs, input gradient and every parameter gradient of one training step agree."""
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    grads = []
    for model in (fused, plain):
        torch.manual_seed(seed)  # same drop-path draws in both (same call order)
        inp = x.clone().requires_grad_()
        outs = model(inp)
        sum((o * torch.linspace(-1, 1, o.numel()).view_as(o)).sum() for o in outs).backward()
        grads.append((outs, inp.grad))
    (outs_f, dx_f), (outs_p, dx_p) = grads
    torch.testing.assert_close(outs_f, outs_p, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dx_f, dx_p, rtol=1e-4, atol=1e-6)
    for (name, p), q in zip(fused.named_parameters(), plain.parameters()):
        assert (p.grad is None) == (q.grad is None), name
        if p.grad is not None:
            # fp32 sums in another order: tolerance relative to the gradient's scale
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-4,
                                       atol=1e-6 * max(1., q.grad.abs().max().item()), msg=name)


def test_backbone_grads_match_plain_modules(monkeypatch):
    assert_same_grads(*backbone_pair(monkeypatch))


def test_backbone_grads_match_plain_modules_with_drop_path(monkeypatch):
    fused, plain = backbone_pair(monkeypatch, drop_path_rate=0.5)
    assert_same_grads(fused, plain, seed=3)
    outs = [fused(torch.ones(2, 3, 64, 64))[3] for _ in range(2)]
    assert not torch.allclose(*outs), 'drop path inactive in train mode'


def test_backbone_grads_match_plain_modules_with_cp(monkeypatch):
    fused, plain = backbone_pair(monkeypatch, drop_path_rate=0.3, with_cp=True)
    plain.with_cp = False
    assert_same_grads(fused, plain, seed=5)


@pytest.mark.parametrize('frozen_stages', [1, 3])
def test_backbone_grads_match_plain_modules_frozen(monkeypatch, frozen_stages):
    fused, plain = backbone_pair(monkeypatch, frozen_stages=frozen_stages)
    assert_same_grads(fused, plain)
    assert fused.stages[0][0].pwconv1.weight.grad is None
    assert fused.stages[frozen_stages][0].pwconv1.weight.grad is not None


def test_backbone_trains_under_autocast_like_plain_modules(monkeypatch):
    """AMP: under autocast (bf16 on CPU; fp16 on CUDA takes the same path) the block runs the
    plain modules' ops, so outputs and (fp32) gradients equal theirs, and backward does not mix
    the low-precision activations with fp32 weights."""
    fused, plain = backbone_pair(monkeypatch)
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(2)
    weights = [torch.randn(2, c, 16 // 2**i, 24 // 2**i, generator=gen)
               for i, c in enumerate(fused.out_channels)]
    results = []
    for model in (fused, plain):
        with torch.autocast('cpu', dtype=torch.bfloat16):
            outs = model(x)
        sum((o.float() * w).sum() for o, w in zip(outs, weights)).backward()
        results.append((outs, [p.grad for p in model.parameters()]))
    (outs_f, grads_f), (outs_p, grads_p) = results
    torch.testing.assert_close(outs_f, outs_p)
    for (name, _), grad_f, grad_p in zip(fused.named_parameters(), grads_f, grads_p):
        assert grad_f.dtype == torch.float32, name
        torch.testing.assert_close(grad_f, grad_p, msg=name)


@pytest.mark.parametrize('kernel,size', [(4, (16, 24)), (2, (9, 7))])  # 9 x 7: rows/cols dropped
def test_patchify_conv_equals_strided_conv(kernel, size):
    gen = torch.Generator().manual_seed(0)
    conv = torch.nn.Conv2d(6, 10, kernel, stride=kernel).double()
    x = torch.randn(2, 6, *size, dtype=torch.float64, generator=gen)
    x = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    assert torch.autograd.gradcheck(patchify_conv, (x, conv.weight, conv.bias))
    out = patchify_conv(x, conv.weight, conv.bias)
    grad_out = torch.randn(out.shape, dtype=torch.float64, generator=gen)
    grads = torch.autograd.grad(out, (x, conv.weight, conv.bias), grad_out)
    ref = conv(x)
    ref_grads = torch.autograd.grad(ref, (x, conv.weight, conv.bias), grad_out)
    torch.testing.assert_close(out, ref)
    for grad, ref_grad in zip(grads, ref_grads):
        torch.testing.assert_close(grad, ref_grad)
    with torch.no_grad():
        no_bias = conv(x) - conv.bias[:, None, None]
        torch.testing.assert_close(patchify_conv(x, conv.weight, None), no_bias)


def test_an_op_takes_its_own_path_only_on_its_listed_devices(monkeypatch):
    x, nw, nb, w1, b1, w2, b2, gamma = mlp_inputs(True, dtype=torch.float32)
    own = norm_mlp(x, nw, nb, 1e-6, w1, b1, w2, b2, gamma)
    assert type(own.grad_fn).__name__ == 'NormMlpFunctionBackward'
    monkeypatch.setitem(convnext_ops.OWN_PATH_DEVICES, 'norm_mlp', set())
    plain = norm_mlp(x, nw, nb, 1e-6, w1, b1, w2, b2, gamma)
    assert type(plain.grad_fn).__name__ == 'MulBackward0'  # the plain modules' layer scale


def test_own_paths_sets_exactly_the_given_ops_and_restores_the_table():
    before = {op: set(devices) for op, devices in convnext_ops.OWN_PATH_DEVICES.items()}
    with convnext_ops.own_paths('cuda'):
        assert all('cuda' in devices for devices in convnext_ops.OWN_PATH_DEVICES.values())
    with convnext_ops.own_paths('cpu', ops=['norm_mlp']):
        assert {op for op, devices in convnext_ops.OWN_PATH_DEVICES.items()
                if 'cpu' in devices} == {'norm_mlp'}
        x = torch.randn(1, 4, 9, 9, requires_grad=True)
        weight = torch.randn(4, 1, 7, 7, requires_grad=True)
        assert type(depthwise_conv(x, weight, None).grad_fn).__name__ == \
            'ConvolutionBackward0'  # the framework's conv
    assert convnext_ops.OWN_PATH_DEVICES == before
    with pytest.raises(ValueError, match="unknown ops \\['gelu'\\]; valid: depthwise_conv"):
        with convnext_ops.own_paths('cuda', ops=['gelu']):
            pass
