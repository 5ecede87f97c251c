"""Recognise a published ConvNeXt checkpoint format, convert it to our layout and load it.

Our layout is the official one (:mod:`.convnext`). A format is recognised by the name of its
first block's depthwise conv, after unwrapping ``state_dict`` / ``model`` / ``module``
containers and stripping a prefix (``prefix`` as in mmengine, or else automatically a DDP
``module.``, a detector's / segmentor's ``backbone.`` and HuggingFace's ``convnext.`` /
``convnextv2.``):

=====================================  ============================================
format                                 first block's depthwise conv
=====================================  ============================================
DINOv3 (its repository's files)        ``stages.0.0.dwconv.weight`` with ``norms.3.weight``
official (classification / dense)      ``stages.0.0.dwconv.weight``
DINOv3 timm (``*.dinov3_lvd1689m``)    timm's, with ``head.norm.weight`` and no ``head.fc``
timm                                   ``stages.0.blocks.0.conv_dw.weight``
mmpretrain, mmdet / mmseg model zoos   ``stages.0.0.depthwise_conv.weight``
torchvision                            ``features.1.0.block.0.weight``
HuggingFace transformers               ``encoder.stages.0.layers.0.dwconv.weight``
DINOv3 transformers                    ``stages.0.layers.0.depthwise_conv.weight`` (files),
                                       ``model.stages.0.layers.0...`` (transformers 5 in memory)
ConvNeXt V2 FCMAE pre-training         ``encoder.stages.0.0.dwconv.kernel``
=====================================  ============================================

Keys are renamed, then kept only if they name a tensor of our layout; classification heads,
the other parts of a detector or segmentor and unknown extras are dropped. Shapes are brought
to ours: layer scale (C, 1, 1) and GRN (1, 1, 1, C) -> (C,); 1x1-conv pointwise weights
(O, I, 1, 1) -> Linear (O, I).

FCMAE (``convnextv2_*_1k_224_fcmae.pt``) is the state dict of the official pre-training model
(``models/fcmae.py``): the sparse encoder under ``encoder.``, whose MinkowskiEngine layers wrap
LayerNorms and Linears (``.ln.``, ``.linear.``), store conv kernels as ``.kernel`` and biases and
GRN parameters as (1, C); then the decoder (``proj``, ``mask_token``, ``decoder``, ``pred``),
which is dropped. The encoder converts as the official ``remap_checkpoint_keys`` (``utils.py``)
does for fine-tuning (:func:`fcmae_kernel_to_conv`); every other key of such a file raises.

Output norms ``norm{i}`` are loaded only from formats that define them as the per-stage output
norms: the official dense-prediction checkpoints, mmpretrain and the mmdet / mmseg zoos (their
ConvNeXt names its output norms ``norm{i}``; mmdet's own ConvNeXt recipes load them, including
the ``norm3`` of mmpretrain classifiers) and HuggingFace's ``ConvNextBackbone``
(``hidden_states_norms.stage{i+1}``). A classifier's final norm (official ``norm``, timm
``head.norm``, torchvision ``classifier.0``, HuggingFace ``layernorm``) normalises globally pooled
features, not a feature map, so it is dropped rather than used as ``norm3``: all four output norms
then start alike from weight 1, bias 0, as in the official dense-prediction code.

DINOv3's ConvNeXt (``dinov3/models/convnext.py``; transformers' ``DINOv3ConvNextModel``; timm's
``convnext_*.dinov3_lvd1689m``) is the official V1 network plus a final LayerNorm that normalises
every last-stage token, the pooled one and each pixel's alike (``norm``, aliased as ``norms.3``;
transformers ``layer_norm``; timm ``head.norm``). Distillation trained the last stage through it,
and DINOv3's own dense evaluation reads the last stage through it, so it becomes ``norm3``; the
alias ``norms.3`` is dropped and reported, and ``norm0``..``norm2`` start fresh (DINOv3 reads
those stages unnormalised).

:func:`convert_in_place` renames the backbone part of a whole detector / segmentor state dict
(the mmdet / mmseg zoos' mmpretrain layout) so that mmengine's ``load_from`` and
``tools/test.py`` load it; :class:`~.convnext.ConvNeXt` calls it before every state-dict load.
"""
import math
import os
import pickle
import re
import urllib.parse
from collections.abc import Mapping
from typing import Callable, NamedTuple, Optional, Union

import torch
from mmengine.logging import MMLogger

from .arch_settings import ARCH_SETTINGS

_CONTAINER_KEYS = ('state_dict', 'model', 'module')
_AUTO_PREFIXES = ('module.', 'backbone.', 'convnext.', 'convnextv2.')

#: Every tensor name of our layout.
_OUR_KEY = re.compile(r'downsample_layers\.[0-3]\.[01]\.(weight|bias)'
                      r'|stages\.[0-3]\.\d+\.((dwconv|norm|pwconv1|pwconv2)\.(weight|bias)'
                      r'|gamma|grn\.(gamma|beta))'
                      r'|norm[0-3]\.(weight|bias)')
_OUTPUT_NORM = re.compile(r'norm[0-3]\.')
_STAGE_INDEX = re.compile(r'(?:downsample_layers|stages)\.(\d)\.')

Rule = tuple[str, Union[str, Callable[[re.Match], str]]]


class _Format(NamedTuple):
    name: str
    first_dwconv: str  # the key that identifies the format
    rules: tuple[Rule, ...]  # re.sub(pattern, replacement) applied to every key, in order
    # (source key, tensor) -> tensor, before renaming; None keeps the tensor
    convert_tensor: Optional[Callable[[str, torch.Tensor], torch.Tensor]] = None
    # None: keys outside our layout are dropped; names: only keys under these top-level
    # modules are, any other key outside our layout raises
    droppable: Optional[tuple[str, ...]] = None
    required: tuple[str, ...] = ()  # keys a state dict of this format also holds
    absent: tuple[str, ...] = ()  # keys it never holds

    def matches(self, state_dict):
        return (self.first_dwconv in state_dict and all(k in state_dict for k in self.required)
                and not any(k in state_dict for k in self.absent))


def fcmae_kernel_to_conv(key, kernel):
    """A MinkowskiEngine conv kernel of an FCMAE checkpoint -> the dense conv weight.

    As the official ``remap_checkpoint_keys``: a (k*k, I, O) kernel -> (O, I, k, k), a depthwise
    (k*k, C) kernel -> (C, 1, k, k); kernel row ``w * k + h`` holds spatial position (h, w) (the
    official reshape to (.., k, k) followed by its ``transpose(3, 2)``).

    Raises:
        ValueError: naming ``key``, for a kernel that is not 2-D or 3-D or whose first dimension
            is not a square.
    """
    side = math.isqrt(kernel.shape[0]) if kernel.dim() else 0
    if kernel.dim() not in (2, 3) or side * side != kernel.shape[0] or side == 0:
        raise ValueError(f'FCMAE kernel {key} has shape {tuple(kernel.shape)}; expected '
                         '(k*k, C) (depthwise) or (k*k, in, out)')
    rows = kernel.unflatten(0, (side, side))  # (w, h, ...)
    if kernel.dim() == 2:
        return rows.permute(2, 1, 0).unsqueeze(1).contiguous()  # (C, 1, h, w)
    return rows.permute(3, 2, 1, 0).contiguous()  # (O, I, h, w)


def _fcmae_tensor(key, tensor):
    """FCMAE encoder tensors -> dense shapes: kernels to conv weights, (1, C) biases to (C,)."""
    if key.endswith('.kernel'):
        return fcmae_kernel_to_conv(key, tensor)
    if key.endswith('.bias') and tensor.dim() != 1:
        return tensor.reshape(-1)
    return tensor


_TIMM_RULES = (
    (r'^stem\.', 'downsample_layers.0.'),
    (r'^stages\.(\d)\.downsample\.', r'downsample_layers.\1.'),
    (r'^stages\.(\d)\.blocks\.', r'stages.\1.'),
    (r'\.conv_dw\.', '.dwconv.'),
    (r'\.mlp\.fc1\.', '.pwconv1.'),
    (r'\.mlp\.fc2\.', '.pwconv2.'),
    (r'\.mlp\.grn\.weight$', '.grn.gamma'),
    (r'\.mlp\.grn\.bias$', '.grn.beta'),
)

_DINOV3_HF_RULES = (
    (r'^stages\.(\d)\.downsample_layers\.', r'downsample_layers.\1.'),
    (r'^stages\.(\d)\.layers\.', r'stages.\1.'),
    (r'\.depthwise_conv\.', '.dwconv.'),
    (r'\.pointwise_conv([12])\.', r'.pwconv\1.'),
    (r'^(stages\.\d\.\d+)\.layer_norm\.', r'\1.norm.'),
    (r'^layer_norm\.', 'norm3.'),
)

_FORMATS = (
    _Format('DINOv3', 'stages.0.0.dwconv.weight', ((r'^norm\.', 'norm3.'), ),
            required=('norms.3.weight', )),
    _Format('official', 'stages.0.0.dwconv.weight', ()),
    _Format('DINOv3 timm', 'stages.0.blocks.0.conv_dw.weight',
            _TIMM_RULES + ((r'^head\.norm\.', 'norm3.'), ),
            required=('head.norm.weight', ), absent=('head.fc.weight', )),
    _Format('timm', 'stages.0.blocks.0.conv_dw.weight', _TIMM_RULES),
    _Format('mmpretrain', 'stages.0.0.depthwise_conv.weight', (
        (r'\.depthwise_conv\.', '.dwconv.'),
        (r'\.pointwise_conv([12])\.', r'.pwconv\1.'),
    )),
    _Format('torchvision', 'features.1.0.block.0.weight', (
        (r'^features\.0\.', 'downsample_layers.0.'),
        (r'^features\.([246])\.', lambda m: f'downsample_layers.{int(m[1]) // 2}.'),
        (r'^features\.([1357])\.', lambda m: f'stages.{int(m[1]) // 2}.'),
        (r'\.block\.0\.', '.dwconv.'),
        (r'\.block\.2\.', '.norm.'),
        (r'\.block\.3\.', '.pwconv1.'),
        (r'\.block\.5\.', '.pwconv2.'),
        (r'\.layer_scale$', '.gamma'),
    )),
    _Format('huggingface', 'encoder.stages.0.layers.0.dwconv.weight', (
        (r'^embeddings\.patch_embeddings\.', 'downsample_layers.0.0.'),
        (r'^embeddings\.layernorm\.', 'downsample_layers.0.1.'),
        (r'^encoder\.stages\.(\d)\.downsampling_layer\.', r'downsample_layers.\1.'),
        (r'^encoder\.stages\.(\d)\.layers\.', r'stages.\1.'),
        (r'^(stages\.\d\.\d+)\.layernorm\.', r'\1.norm.'),
        (r'\.layer_scale_parameter$', '.gamma'),
        (r'\.grn\.weight$', '.grn.gamma'),
        (r'\.grn\.bias$', '.grn.beta'),
        (r'^hidden_states_norms\.stage([1-4])\.', lambda m: f'norm{int(m[1]) - 1}.'),
    )),
    _Format('DINOv3 transformers', 'stages.0.layers.0.depthwise_conv.weight', _DINOV3_HF_RULES),
    # transformers 5's module tree (``state_dict()`` in memory; save_pretrained writes the above)
    _Format('DINOv3 transformers', 'model.stages.0.layers.0.depthwise_conv.weight',
            ((r'^model\.', ''), ) + _DINOV3_HF_RULES),
    _Format('fcmae', 'encoder.stages.0.0.dwconv.kernel', (
        (r'^encoder\.', ''),
        (r'\.kernel$', '.weight'),
        (r'\.(ln|linear)\.', '.'),
    ), _fcmae_tensor, ('proj', 'mask_token', 'decoder', 'pred')),
)


class Conversion(NamedTuple):
    state_dict: dict  # our layout
    format_name: str
    dropped_keys: list  # source keys that are not part of our layout (heads, necks, ...)


def read_checkpoint(path_or_url, map_location='cpu'):
    """Read a local checkpoint file or an http(s) URL -> the checkpoint dict.

    PyTorch files are read with ``torch.load(weights_only=True)`` (tensors, containers and plain
    values only), safetensors files with safetensors (to CPU). A URL is downloaded once into torch
    hub's cache (``torch.hub.get_dir()/checkpoints``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a checkpoint (not a PyTorch / safetensors file, truncated, not a dict
            holding tensors).
        pickle.UnpicklingError: the file holds Python objects that could execute code.
    """
    path = str(path_or_url)
    if path.startswith(('http://', 'https://')):
        path = _download(path)
    path = os.path.expanduser(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint file not found: {path}')
    with open(path, 'rb') as file:
        head = file.read(9)
    is_torch = head.startswith((b'PK\x03\x04', b'\x80'))  # torch's zip format, or a bare pickle
    if not is_torch and head[8:] != b'{':  # safetensors: a JSON header's 8-byte length, then '{'
        raise ValueError(f'{path} is not a checkpoint: neither a PyTorch nor a safetensors file '
                         f'(it starts with {head!r})')
    try:
        if is_torch:
            checkpoint = torch.load(path, map_location=map_location, weights_only=True)
        else:
            from safetensors.torch import load_file
            checkpoint = load_file(path)
    except pickle.UnpicklingError as err:
        raise pickle.UnpicklingError(
            f'{path} was not loaded: it holds Python objects that could execute code when loaded '
            f'(torch.load(weights_only=True) refused it: {_refusal_reason(err)}). If you trust '
            'this file, convert it once, in an environment you trust, into a tensors-only '
            f'checkpoint: python tools/convert_checkpoint.py {path} CONVERTED.pth '
            '--trust-pickle, then load CONVERTED.pth.') from err
    except Exception as err:  # torch and safetensors raise RuntimeError, EOFError, ... on bad bytes
        raise ValueError(f'{path} is truncated or corrupt: {type(err).__name__}: {err}') from err
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f'{path} holds a {type(checkpoint).__name__}, not a checkpoint dict')
    if not any(torch.is_tensor(v) for v in unwrap(checkpoint).values()):
        raise ValueError(f'{path} holds no tensors (top-level keys: {_sample(checkpoint)})')
    return checkpoint


def convert_state_dict(state_dict, prefix=None):
    """Convert a checkpoint or state dict of any recognised format -> (our state dict, format name).

    Args:
        state_dict (dict): a checkpoint (``state_dict`` / ``model`` / ``module`` containers are
            unwrapped) or a flat name -> tensor dict.
        prefix (str, optional): as in mmengine, keep only the keys starting with ``prefix + '.'``
            and strip it. Default None: strip ``module.``, ``backbone.``, ``convnext.`` and
            ``convnextv2.`` where present, dropping the keys outside them.

    Raises:
        ValueError: no key under ``prefix``, an unrecognised format, or (FCMAE) a kernel of a
            wrong shape or a key outside the encoder and the decoder; the message names the key.
    """
    conversion = convert(state_dict, prefix)
    return conversion.state_dict, conversion.format_name


def load_pretrained(model, checkpoint, prefix=None, map_location='cpu'):
    """Read, convert and load ``checkpoint`` (path or URL) into a ConvNeXt ``model``; log a report.

    Only ``norm{i}`` may be missing from the checkpoint (they keep their initialisation), and only
    stages the model does not build (or output norms it lacks) may be extra; anything else
    (another arch, V1 vs V2, layer scale on or off) raises a ValueError naming the first
    offending key, the shapes if they differ and the arch the checkpoint looks like. Nothing is
    loaded unless everything fits.
    """
    source = read_checkpoint(checkpoint, map_location)
    try:
        conversion = convert(source, prefix)
    except ValueError as err:
        raise ValueError(f'{checkpoint}: {err}') from None
    loaded, expected = conversion.state_dict, model.state_dict()

    def mismatch(problem):
        return ValueError(f'{checkpoint}: {problem}; the checkpoint looks like '
                          f'{_describe_arch(loaded)}, the model is {_describe_arch(expected)}')

    for key, tensor in expected.items():
        if key in loaded and loaded[key].shape != tensor.shape:
            raise mismatch(f'shape mismatch at {key}: checkpoint {tuple(loaded[key].shape)}, '
                           f'model {tuple(tensor.shape)}')
    missing = [key for key in expected if key not in loaded]
    absent = [key for key in missing if not _OUTPUT_NORM.match(key)]
    if absent:
        raise mismatch(f'{_first(absent)} of the model is not in it')
    built_stages = {_stage_index(key) for key in expected} - {None}
    extra = [key for key in loaded if key not in expected]
    unexpected = [key for key in extra if _stage_index(key) in built_stages]
    if unexpected:
        raise mismatch(f'it has {_first(unexpected)}, which the model lacks')

    model.load_state_dict({key: loaded[key] for key in expected if key in loaded}, strict=False)
    report = [f'Loaded {len(expected) - len(missing)} tensors from {checkpoint} '
              f'({conversion.format_name} format)']
    if missing:
        report.append(f'newly initialised: {summarise_keys(missing)}')
    if extra or conversion.dropped_keys:
        ignored = summarise_keys(conversion.dropped_keys + extra)
        report.append(f'ignored from the checkpoint: {ignored}')
    MMLogger.get_current_instance().info('\n  '.join(report))


def convert(checkpoint, prefix=None):
    """:func:`convert_state_dict` -> :class:`Conversion`, which also lists the dropped keys."""
    state_dict = unwrap(checkpoint)
    dropped = []
    if prefix:
        state_dict, dropped = _strip_prefix(state_dict, prefix)
        if not state_dict:
            raise ValueError(f'no key starts with prefix {prefix!r}; keys: {_sample(dropped)}')
    else:
        for auto_prefix in _AUTO_PREFIXES:
            if any(key.startswith(auto_prefix) for key in state_dict):
                state_dict, outside = _strip_prefix(state_dict, auto_prefix)
                dropped += outside
    fmt = _detect(state_dict)
    if fmt is None:
        names = {}
        for known_format in _FORMATS:
            names.setdefault(known_format.first_dwconv, []).append(known_format.name)
        known = ', '.join(f'{key} ({" / ".join(dict.fromkeys(formats))})'
                          for key, formats in names.items())
        raise ValueError('unrecognised ConvNeXt checkpoint format: it names the first block\'s '
                         f'depthwise conv as none of {known}; keys: {_sample(state_dict)}')
    converted = {}
    for key, tensor in state_dict.items():
        new_key = key
        for pattern, replacement in fmt.rules:
            new_key = re.sub(pattern, replacement, new_key)
        if _OUR_KEY.fullmatch(new_key) and torch.is_tensor(tensor):
            if fmt.convert_tensor is not None:
                tensor = fmt.convert_tensor(key, tensor)
            converted[new_key] = _our_shape(new_key, tensor)
        elif fmt.droppable is None or key.split('.')[0] in fmt.droppable:
            dropped.append(key)
        else:
            raise ValueError(f'{key} of the {fmt.name} checkpoint is neither a ConvNeXt tensor '
                             f'nor under the modules dropped ({", ".join(fmt.droppable)})')
    name = fmt.name
    if name == 'official':
        name += ' classification' if 'head.weight' in state_dict else ' dense-prediction'
    return Conversion(converted, name, dropped)


def convert_in_place(state_dict, prefix=''):
    """Rename the ConvNeXt tensors under ``prefix`` of a whole-model ``state_dict`` to our layout.

    For a detector / segmentor checkpoint loaded whole (``load_from``, ``tools/test.py``): the
    backbone part of an mmdet / mmseg zoo model (mmpretrain layout), or any other recognised
    format, is converted; keys under ``prefix`` that are not ConvNeXt tensors stay as they are
    (the loader then reports them as unexpected). Nothing happens when the keys are in our layout
    already or when no format is recognised (the loader reports the missing keys).

    Returns:
        str | None: the name of the converted format, or None.
    """
    inside = {key[len(prefix):]: value for key, value in state_dict.items()
              if key.startswith(prefix)}
    fmt = _detect(inside)
    if fmt is None or fmt.name == 'official':
        return None
    conversion = convert(inside)
    for key in inside:
        del state_dict[prefix + key]
    state_dict.update((prefix + key, value) for key, value in conversion.state_dict.items())
    state_dict.update((prefix + key, inside[key]) for key in conversion.dropped_keys)
    return conversion.format_name


def whole_model_state_dict(checkpoint):
    """A whole-model checkpoint's flat state dict, as mmengine's loader reads it: containers
    unwrapped, DDP's ``module.`` prefix dropped. A new dict; the tensors are shared."""
    return {key[len('module.'):] if key.startswith('module.') else key: value
            for key, value in unwrap(checkpoint).items()}


def _detect(state_dict):
    """The first format of :data:`_FORMATS` that ``state_dict`` matches, or None."""
    return next((fmt for fmt in _FORMATS if fmt.matches(state_dict)), None)


def unwrap(checkpoint):
    """Descend into ``state_dict`` / ``model`` / ``module`` containers -> the flat state dict."""
    while True:
        inner = next((checkpoint[key] for key in _CONTAINER_KEYS
                      if isinstance(checkpoint.get(key), Mapping)), None)
        if inner is None:
            return checkpoint
        checkpoint = inner


def _strip_prefix(state_dict, prefix):
    """mmengine's prefix semantics -> ({key without prefix: value}, [keys outside the prefix])."""
    prefix = prefix if prefix.endswith('.') else prefix + '.'
    inside = {key[len(prefix):]: value for key, value in state_dict.items()
              if key.startswith(prefix)}
    return inside, [key for key in state_dict if not key.startswith(prefix)]


def _our_shape(key, tensor):
    """Layer scale (C, 1, 1) and GRN (1, 1, 1, C) -> (C,); 1x1 pointwise conv -> Linear (O, I)."""
    is_vector = tensor.dim() > 1 and tensor.numel() == max(tensor.shape)
    if key.endswith(('.gamma', '.beta')) and is_vector:
        return tensor.flatten()
    if '.pwconv' in key and key.endswith('.weight') and tensor.shape[2:] == (1, 1):
        return tensor.flatten(1)
    return tensor


def _stage_index(key):
    """Stage of a ``downsample_layers.i`` / ``stages.i`` key; None for the output norms."""
    match = _STAGE_INDEX.match(key)
    return int(match[1]) if match else None


def _describe_arch(state_dict):
    """E.g. 'ConvNeXt-V2 atto (depths (2, 2, 6, 2), channels (40, 80, 160, 320))' from our keys."""
    depths, channels = [], []
    for i in range(4):
        if f'stages.{i}.0.dwconv.weight' not in state_dict:
            break
        channels.append(state_dict[f'stages.{i}.0.dwconv.weight'].shape[0])
        depths.append(len({key.split('.')[2] for key in state_dict
                           if key.startswith(f'stages.{i}.')}))
    names = [name for name, (arch_depths, arch_channels) in ARCH_SETTINGS.items()
             if list(arch_depths[:len(depths)]) == depths
             and list(arch_channels[:len(channels)]) == channels]
    version = 'ConvNeXt-V2' if any('.grn.' in key for key in state_dict) else 'ConvNeXt'
    return (f'{version} {"/".join(names) or "of no known arch"} '
            f'(depths {tuple(depths)}, channels {tuple(channels)})')


def summarise_keys(keys, max_groups=8):
    """'stages.3 (36), head (2)': keys grouped by module (first name, plus its index if any)."""
    counts = {}
    for key in keys:
        parts = key.split('.')
        group = '.'.join(parts[:2] if len(parts) > 2 and parts[1].isdigit() else parts[:1])
        counts[group] = counts.get(group, 0) + 1
    groups = [f'{group} ({count})' for group, count in counts.items()]
    more = f', ... {len(groups) - max_groups} more modules' if len(groups) > max_groups else ''
    return ', '.join(groups[:max_groups]) + more


def _first(keys):
    return keys[0] + (f' (and {len(keys) - 1} more)' if len(keys) > 1 else '')


def _sample(keys, count=5):
    keys = list(keys)
    return ', '.join(keys[:count]) + (f', ... ({len(keys)} keys)' if len(keys) > count else '')


def _refusal_reason(err):
    """The line of torch's weights_only refusal that names the offending global or opcode."""
    lines = [line.strip() for line in str(err).splitlines()]
    return next((line for line in lines if 'nsupported' in line), lines[0]).rstrip('.')


def _download(url):
    """Download ``url`` once into torch hub's checkpoint cache -> the local path."""
    cache_dir = os.path.join(torch.hub.get_dir(), 'checkpoints')
    path = os.path.join(cache_dir, os.path.basename(urllib.parse.urlparse(url).path))
    if not os.path.isfile(path):
        os.makedirs(cache_dir, exist_ok=True)
        torch.hub.download_url_to_file(url, path)
    return path
