"""Fused ConvNeXt block MLP: LayerNorm -> 1x1 (4x) -> GELU -> 1x1 -> layer scale, on NHWC rows.

Autograd of the plain modules stores four activations per block for backward: the LayerNorm
input and output, the GELU input and output (C + C + 4C + 4C values per pixel).
:class:`NormMlpFunction` stores only the LayerNorm input with its statistics and the GELU input
(C + 4C), and recomputes the cheap LayerNorm and GELU outputs in backward. The layer scale is
folded into the second 1x1 weight (``gamma[:, None] * W2``, exact up to fp32 rounding); its
gradients are taken from the same ``dout^T @ gelu`` product. Gradients equal those of the plain
modules up to fp32 rounding. Under autocast (AMP) the plain modules' ops run instead, as
autocast casts them: the function's backward would mix low-precision activations with fp32
weights, and the unfolded layer scale keeps the residual stream in fp32 as the plain modules do.
"""
import torch
import torch.nn.functional as F

aten = torch.ops.aten


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
    if torch.is_autocast_enabled(x.device.type):  # AMP: the plain modules' ops, cast per op
        y = F.linear(F.gelu(F.linear(F.layer_norm(x, x.shape[-1:], norm_weight, norm_bias, eps),
                                     w1, b1)), w2, b2)
        return y if gamma is None else y * gamma
    tensors = (x, norm_weight, norm_bias, w1, b1, w2, b2, gamma)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        return NormMlpFunction.apply(*tensors, eps)
    rows = x.reshape(-1, x.shape[-1])  # inference: nothing stored, GELU in place
    hidden = torch.addmm(b1, F.layer_norm(rows, rows.shape[-1:], norm_weight, norm_bias, eps),
                         w1.t())
    out = _second_linear(aten.gelu_(hidden), w2, b2, gamma)
    return out.view(x.shape)


def _second_linear(act, w2, b2, gamma):
    """``act @ (gamma * W2)^T + gamma * b2``: layer scale folded into the weight."""
    if gamma is None:
        return torch.addmm(b2, act, w2.t())
    return torch.addmm(b2 * gamma, act, (w2 * gamma[:, None]).t())


class NormMlpFunction(torch.autograd.Function):
    """:func:`norm_mlp` with backward recomputing the LayerNorm and GELU outputs."""

    @staticmethod
    def forward(ctx, x, norm_weight, norm_bias, w1, b1, w2, b2, gamma, eps):
        rows = x.reshape(-1, x.shape[-1])  # (M, C)
        normed, mean, rstd = aten.native_layer_norm(rows, rows.shape[-1:], norm_weight, norm_bias,
                                                    eps)
        hidden = torch.addmm(b1, normed, w1.t())  # (M, 4C), GELU input
        del normed
        out = _second_linear(F.gelu(hidden), w2, b2, gamma)
        ctx.save_for_backward(rows, mean, rstd, norm_weight, norm_bias, w1, hidden, w2, b2, gamma)
        ctx.eps, ctx.x_shape = eps, x.shape
        return out.view(x.shape)

    @staticmethod
    def backward(ctx, grad_out):
        rows, mean, rstd, norm_weight, norm_bias, w1, hidden, w2, b2, gamma = ctx.saved_tensors
        need = ctx.needs_input_grad
        grad_out = grad_out.reshape(-1, grad_out.shape[-1])  # (M, C)

        act = F.gelu(hidden)  # recomputed
        grad_w2 = grad_out.t() @ act  # d/d(gamma * W2), (C, 4C)
        grad_b2 = grad_out.sum(0)
        grad_gamma = None
        if gamma is None:
            w2_scaled = w2
        else:
            if need[7]:  # d/dgamma of sum(dout * (act @ W2^T + b2))
                grad_gamma = torch.linalg.vecdot(grad_w2, w2) + grad_b2 * b2
            grad_w2.mul_(gamma[:, None])
            grad_b2 = grad_b2 * gamma
            w2_scaled = w2 * gamma[:, None]
        grad_hidden = torch.mm(grad_out, w2_scaled, out=act)  # reuses the recomputed GELU memory
        aten.gelu_backward.grad_input(grad_hidden, hidden, grad_input=grad_hidden)
        del act, w2_scaled

        normed = aten.native_layer_norm(rows, rows.shape[-1:], norm_weight, norm_bias,
                                        ctx.eps)[0]  # recomputed
        grad_w1 = grad_hidden.t() @ normed if need[3] else None
        del normed
        grad_b1 = grad_hidden.sum(0) if need[4] else None
        grad_x, grad_norm_weight, grad_norm_bias = aten.native_layer_norm_backward(
            grad_hidden @ w1, rows, rows.shape[-1:], mean, rstd, norm_weight, norm_bias,
            [need[0], need[1], need[2]])
        if grad_x is not None:
            grad_x = grad_x.view(ctx.x_shape)
        return (grad_x, grad_norm_weight, grad_norm_bias, grad_w1, grad_b1,
                grad_w2 if need[5] else None, grad_b2 if need[6] else None, grad_gamma, None)
