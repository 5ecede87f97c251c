"""ConvNeXt ops whose CPU training is faster than the framework's: the depthwise conv, the
patchify convs (stem and downsampling) and the fused block MLP.

Depthwise conv (:func:`depthwise_conv`; undilated only, a dilated one runs the framework's conv):
the forward and input gradient are the framework's conv kernels. The weight gradient is taken as
one grouped conv of the input with the output gradient as kernel (for every channel,
``dW = corr(x, dy)``). On CPU the conv's forward plus backward then takes 0.5-0.8x the time of
the framework's, on the same arithmetic.

Patchify conv (:func:`patchify_conv`): a k x k conv with stride k is one GEMM on the
(pixels, k * k * C) patch rows; with gradients its forward plus backward takes 0.5-0.7x the
framework's strided conv on CPU (inference keeps the framework's conv, which is as fast there).

MLP (:func:`norm_mlp`): LayerNorm -> 1x1 (4x) -> GELU -> 1x1 -> layer scale, on NHWC rows.
Autograd of the plain modules stores four activations per block for backward: the LayerNorm
input and output, the GELU input and output (C + C + 4C + 4C values per pixel).
:class:`NormMlpFunction` stores only the LayerNorm input with its statistics and the GELU input
(C + 4C), and recomputes the cheap LayerNorm and GELU outputs in backward. The layer scale is
folded into the second 1x1 layer when the weight is smaller than the output (``gamma[:, None] *
W2``), else applied to the output; both are exact up to fp32 rounding, and its gradients come
from the same ``dout^T @ gelu`` product. On CPU the temporaries of the 4C-wide hidden
activation are processed in row chunks of at most :data:`HIDDEN_CHUNK_NUMEL` elements, reused
across chunks: they stay in cache and under the C allocator's mmap threshold (32 MiB in glibc),
above which every fresh buffer is page-faulted in again.

Gradients equal those of the plain modules up to fp32 rounding. Under autocast (AMP) the plain
modules' ops run instead, as autocast casts them: a hand-written backward would mix
low-precision activations with fp32 weights, and the unfolded layer scale keeps the residual
stream in fp32 as the plain modules do.

Each op takes its own path only on the device types :data:`OWN_PATH_DEVICES` lists for it,
those where ``tools/analysis/benchmark_backbone.py`` measured it faster than the plain modules;
elsewhere (CUDA, until measured there) the plain modules' ops run. :func:`own_paths` sets
which ops take their own path on a device type, to measure and test them there.
"""
import contextlib

import torch
import torch.nn.functional as F

aten = torch.ops.aten

#: Most elements of a hidden-activation chunk on CPU: 2 Mi (8 MiB in fp32).
HIDDEN_CHUNK_NUMEL = 1 << 21


#: op name -> device types on which it takes its own path (measured faster there than the plain
#: modules: CPU, see docs/performance.md); on other devices the plain modules' ops run.
OWN_PATH_DEVICES = {'depthwise_conv': {'cpu'}, 'patchify_conv': {'cpu'}, 'norm_mlp': {'cpu'}}


@contextlib.contextmanager
def own_paths(device_type, ops=tuple(OWN_PATH_DEVICES)):
    """Within the block exactly the ``ops`` (names in :data:`OWN_PATH_DEVICES`; default all)
    take their own paths on ``device_type`` ('cuda', 'cpu', ...), the others the plain modules'
    ops: to measure and test them there. The table is restored on exit."""
    unknown = set(ops) - set(OWN_PATH_DEVICES)
    if unknown:
        raise ValueError(f'unknown ops {sorted(unknown)}; valid: {", ".join(OWN_PATH_DEVICES)}')
    saved = {op: set(devices) for op, devices in OWN_PATH_DEVICES.items()}
    for op, devices in OWN_PATH_DEVICES.items():
        (devices.add if op in ops else devices.discard)(device_type)
    try:
        yield
    finally:
        for op, devices in saved.items():
            OWN_PATH_DEVICES[op] = devices


def _own_path_on(op, x):
    """Whether ``op`` may take its own path for ``x``: its device is listed for ``op`` and no
    autocast is active there (under AMP the plain modules' ops run, as autocast casts them)."""
    return x.device.type in OWN_PATH_DEVICES[op] and not torch.is_autocast_enabled(x.device.type)


def _needs_grad(tensors):
    """Whether autograd will want a gradient of any of ``tensors`` (None entries skipped)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def depthwise_conv(x, weight, bias, dilation=1):
    """Depthwise conv with stride 1 and 'same' padding ``dilation * (k // 2)``.

    Args:
        x (Tensor): (N, C, H, W), any memory format (channels_last is fastest on CPU).
        weight (Tensor): (C, 1, k, k), k odd; ``bias`` (C,) or None.
        dilation (int): > 1 (ConvNeXt's stages past its ``output_stride``) always runs the
            framework's conv, forward and backward. Default 1.

    Returns:
        Tensor: (N, C, H, W), in the memory format the conv kernel picks for ``x``.
    """
    if dilation == 1 and _own_path_on('depthwise_conv', x) and _needs_grad((x, weight, bias)):
        return DepthwiseConvFunction.apply(x, weight, bias)
    return F.conv2d(x, weight, bias, padding=dilation * (weight.shape[-1] // 2),
                    dilation=dilation, groups=x.shape[1])


class DepthwiseConvFunction(torch.autograd.Function):
    """:func:`depthwise_conv` with the weight gradient computed as a grouped conv."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        return F.conv2d(x, weight, bias, padding=weight.shape[-1] // 2, groups=x.shape[1])

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        n, c, h, w = x.shape
        k = weight.shape[-1]
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = aten.convolution_backward(
                grad_out, x, weight, None, [1, 1], [k // 2, k // 2], [1, 1], False, [0, 0], c,
                [True, False, False])[0]
        if ctx.needs_input_grad[1]:  # dW[c] = sum_n corr(x[n, c] padded, dy[n, c]): (k, k)
            grad_weight = F.conv2d(x.contiguous().view(1, n * c, h, w),
                                   grad_out.contiguous().view(n * c, 1, h, w),
                                   padding=k // 2, groups=n * c)
            grad_weight = grad_weight.view(n, c, 1, k, k).sum(0)
        if ctx.needs_input_grad[2]:  # False when there is no bias
            grad_bias = grad_out.sum((0, 2, 3))
        return grad_x, grad_weight, grad_bias


def patchify_conv(x, weight, bias):
    """Conv with kernel k = stride k (non-overlapping patches), no padding.

    Args:
        x (Tensor): (N, C, H, W); rows / columns beyond a multiple of k are dropped, as the
            strided conv does.
        weight (Tensor): (C', C, k, k); ``bias`` (C',) or None.

    Returns:
        Tensor: (N, C', H // k, W // k); channels_last memory when it runs as a GEMM.
    """
    k = weight.shape[-1]
    if not (_own_path_on('patchify_conv', x) and _needs_grad((x, weight, bias))):
        return F.conv2d(x, weight, bias, stride=k)
    n, c, h, w = x.shape
    patches = x[:, :, :h // k * k, :w // k * k].permute(0, 2, 3, 1)  # (N, H, W, C)
    rows = patches.reshape(n, h // k, k, w // k, k, c).transpose(2, 3).reshape(-1, k * k * c)
    out = F.linear(rows, weight.permute(0, 2, 3, 1).reshape(len(weight), -1), bias)
    return out.view(n, h // k, w // k, -1).permute(0, 3, 1, 2)


def norm_mlp(x, norm_weight, norm_bias, eps, w1, b1, w2, b2, gamma=None):
    """``gamma * (W2 @ GELU(W1 @ LayerNorm(x) + b1) + b2)`` over the last dim of ``x``.

    Args:
        x (Tensor): (..., C) input, ideally contiguous (a channels_last map permuted to NHWC).
        norm_weight, norm_bias (Tensor): (C,) LayerNorm affine; ``eps`` its epsilon.
        w1, b1 (Tensor): (4C, C), (4C,) first 1x1 conv as Linear.
        w2, b2 (Tensor): (C, 4C), (C,) second 1x1 conv as Linear.
        gamma (Tensor, optional): (C,) layer scale.

    Returns:
        Tensor: same shape as ``x``.
    """
    tensors = (x, norm_weight, norm_bias, w1, b1, w2, b2, gamma)
    if not _own_path_on('norm_mlp', x):  # the plain modules' ops
        y = F.linear(F.gelu(F.linear(F.layer_norm(x, x.shape[-1:], norm_weight, norm_bias, eps),
                                     w1, b1)), w2, b2)
        return y if gamma is None else y * gamma
    if _needs_grad(tensors):
        return NormMlpFunction.apply(*tensors, eps)
    rows = x.reshape(-1, x.shape[-1])  # inference: nothing stored, GELU in place per chunk
    second = _SecondLinear(w2, b2, gamma, len(rows))
    out = rows.new_empty(rows.shape)
    for chunk, scratch in _row_chunks(rows, w1.shape[0]):
        hidden = torch.addmm(b1, F.layer_norm(rows[chunk], rows.shape[-1:], norm_weight,
                                              norm_bias, eps), w1.t(), out=scratch)
        second(aten.gelu_(hidden), out=out[chunk])
    return second.scale_output(out).view(x.shape)


def _row_chunks(like, width):
    """Yields ``(rows, scratch)`` over the rows of an (M, ``width``) activation shaped after
    ``like`` (M rows): on CPU equal chunks of at most HIDDEN_CHUNK_NUMEL elements (one row at
    least), elsewhere one chunk; ``scratch`` is a (rows, width) view of one buffer, allocated
    once and reused by every chunk. An empty activation yields one empty chunk."""
    num_rows = len(like)
    count = -(-num_rows * width // HIDDEN_CHUNK_NUMEL) if like.device.type == 'cpu' else 1
    step = max(1, -(-num_rows // max(count, 1)))
    buffer = like.new_empty(min(step, num_rows), width)
    for start in range(0, max(num_rows, 1), step):
        rows = slice(start, min(start + step, num_rows))
        yield rows, buffer[:rows.stop - rows.start]


class _SecondLinear:
    """``act @ W2^T + b2`` with the layer scale either folded into (W2, b2) or left for the
    output, whichever scales fewer values: the (C, 4C) weight or the (M, C) output."""

    def __init__(self, w2, b2, gamma, num_rows):
        self.gamma = gamma
        self.folded = gamma is not None and w2.shape[1] <= num_rows
        self.weight = w2 * gamma[:, None] if self.folded else w2  # (C, 4C)
        self.bias = b2 * gamma if self.folded else b2

    def __call__(self, act, out):
        return torch.addmm(self.bias, act, self.weight.t(), out=out)

    def scale_output(self, out):
        """Applies the layer scale in place where it was not folded."""
        return out if self.folded or self.gamma is None else out.mul_(self.gamma)

    def input_grad(self, grad_out, out):
        """d(loss)/d(act) = (gamma * dout) @ W2, written to ``out``."""
        if not self.folded and self.gamma is not None:
            grad_out = grad_out * self.gamma
        return torch.mm(grad_out, self.weight, out=out)


def _accumulate(total, a, b):
    """``total + a @ b``, in place when ``total`` exists."""
    return a @ b if total is None else total.addmm_(a, b)


def _add(total, part):
    """``total + part``, in place when ``total`` exists."""
    return part if total is None else total.add_(part)


class NormMlpFunction(torch.autograd.Function):
    """:func:`norm_mlp` with backward recomputing the LayerNorm and GELU outputs."""

    @staticmethod
    def forward(ctx, x, norm_weight, norm_bias, w1, b1, w2, b2, gamma, eps):
        rows = x.reshape(-1, x.shape[-1])  # (M, C)
        normed, mean, rstd = aten.native_layer_norm(rows, rows.shape[-1:], norm_weight, norm_bias,
                                                    eps)
        hidden = torch.addmm(b1, normed, w1.t())  # (M, 4C), GELU input, saved
        del normed
        second = _SecondLinear(w2, b2, gamma, len(rows))
        out = rows.new_empty(rows.shape)
        for chunk, scratch in _row_chunks(hidden, hidden.shape[1]):
            second(aten.gelu.out(hidden[chunk], out=scratch), out=out[chunk])
        ctx.save_for_backward(rows, mean, rstd, norm_weight, norm_bias, w1, hidden, w2, b2, gamma)
        ctx.eps = eps
        return second.scale_output(out).view(x.shape)

    @staticmethod
    def backward(ctx, grad_out):
        rows, mean, rstd, norm_weight, norm_bias, w1, hidden, w2, b2, gamma = ctx.saved_tensors
        need = ctx.needs_input_grad
        x_shape = grad_out.shape  # the output's, which is x's
        grad_out = grad_out.reshape(-1, grad_out.shape[-1])  # (M, C)
        second = _SecondLinear(w2, b2, gamma, len(rows))
        norm_mask = [need[0], need[1], need[2]]
        grad_x_parts = []
        grad_w2 = grad_w1 = grad_b1 = grad_norm_weight = grad_norm_bias = None
        for chunk, scratch in _row_chunks(hidden, hidden.shape[1]):
            dout, pre = grad_out[chunk], hidden[chunk]
            act = aten.gelu.out(pre, out=scratch)  # recomputed
            if need[5] or need[7]:  # d/dW2 before the layer scale
                grad_w2 = _accumulate(grad_w2, dout.t(), act)
            grad_pre = second.input_grad(dout, out=act)  # reuses the recomputed GELU memory
            aten.gelu_backward.grad_input(grad_pre, pre, grad_input=grad_pre)
            normed = aten.native_layer_norm(rows[chunk], rows.shape[-1:], norm_weight, norm_bias,
                                            ctx.eps)[0]  # recomputed
            if need[3]:
                grad_w1 = _accumulate(grad_w1, grad_pre.t(), normed)
            if need[4]:
                grad_b1 = _add(grad_b1, grad_pre.sum(0))
            if not any(norm_mask):
                continue
            grad_rows, grad_nw, grad_nb = aten.native_layer_norm_backward(
                grad_pre @ w1, rows[chunk], rows.shape[-1:], mean[chunk], rstd[chunk],
                norm_weight, norm_bias, norm_mask)
            grad_x_parts.append(grad_rows)
            grad_norm_weight = _add(grad_norm_weight, grad_nw) if need[1] else None
            grad_norm_bias = _add(grad_norm_bias, grad_nb) if need[2] else None
        grad_b2 = grad_out.sum(0)
        grad_gamma = None
        if gamma is not None:
            if need[7]:  # d/dgamma of sum(dout * (act @ W2^T + b2))
                grad_gamma = (grad_w2.unsqueeze(1) @ w2.unsqueeze(2)).view(-1) + grad_b2 * b2
            if grad_w2 is not None:
                grad_w2.mul_(gamma[:, None])
            grad_b2 = grad_b2 * gamma
        grad_x = None
        if need[0]:
            grad_x = grad_x_parts[0] if len(grad_x_parts) == 1 else torch.cat(grad_x_parts)
            grad_x = grad_x.view(x_shape)
        return (grad_x, grad_norm_weight, grad_norm_bias, grad_w1, grad_b1,
                grad_w2 if need[5] else None, grad_b2 if need[6] else None, grad_gamma, None)
