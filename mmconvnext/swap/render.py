"""Rendering the swapped config as Python source: a short child of the base."""
import math

LINE_WIDTH = 100


def render_config(base_ref, arch, pretrain, model, optim_wrapper, v2=False):
    """Text of the child config: a docstring, ``_base_``, ``custom_imports``, the overrides."""
    data = {'1k': 'ImageNet-1K pretrained', '22k': 'ImageNet-22K pretrained',
            'fcmae': 'FCMAE pretrained',
            'dinov3': 'DINOv3-distilled, DINOv3 License',
            'none': 'randomly initialised'}.get(pretrain, f'initialised from {pretrain}')
    lines = [
        f'"""ConvNeXt{" V2" if v2 else ""}-{arch} ({data}) in place of the backbone of',
        f'{base_ref}.',
        '',
        'Written by tools/swap_backbone.py: the backbone, the input normalisation of its weights,',
        "the input channels of the modules that read it and the paper's optimizer recipe (AdamW +",
        'learning-rate decay) override the base; everything else is inherited.',
        '"""',
        f'_base_ = {base_ref!r}',
        "custom_imports = dict(imports=['mmconvnext'], allow_failed_imports=False)",
        '',
        f'model = {format_value(model, column=len("model = "))}',
        '',
        f'optim_wrapper = {format_value(optim_wrapper, column=len("optim_wrapper = "))}',
    ]
    return '\n'.join(lines) + '\n'


def format_value(value, indent=0, column=0, width=LINE_WIDTH):
    """``value`` as Python source: dicts as ``dict(...)`` (``{...}`` where a key is no
    identifier); one item per line, indented ``indent`` + 4, where the text starting at
    ``column`` would pass ``width``."""
    if isinstance(value, dict):
        if all(isinstance(key, str) and key.isidentifier() for key in value):
            prefixes, brackets = [f'{key}=' for key in value], ('dict(', ')')
        else:
            prefixes, brackets = [f'{key!r}: ' for key in value], ('{', '}')
        items = list(value.values())
    elif isinstance(value, (list, tuple)):
        prefixes, items = [''] * len(value), list(value)
        brackets = ('[', ']') if isinstance(value, list) else (
            '(', ',)' if len(value) == 1 else ')')
    else:
        return repr(value)
    inline = brackets[0] + ', '.join(
        prefix + format_value(item, width=math.inf)
        for prefix, item in zip(prefixes, items)) + brackets[1]
    if column + len(inline) + 2 <= width or not items:  # 2: room for closing brackets / comma
        return inline
    pad = indent + 4
    return brackets[0] + '\n' + ',\n'.join(
        ' ' * pad + prefix + format_value(item, pad, pad + len(prefix), width)
        for prefix, item in zip(prefixes, items)) + brackets[1]


def one_line(value):
    """``value`` as Python source on one line, for messages."""
    return format_value(value, width=math.inf)
