"""Writing a swap: plan, write beside the output, check, then put in place; nothing is left on
failure."""
import os
import os.path as osp
import tempfile

from .check import check_swapped_config, complexity_line
from .errors import BackboneSwapError
from .plan import plan_backbone_swap


def write_swapped_config(base, output, arch, pretrain='1k', force=False, complexity=True,
                         v2=False):
    """Plan the swap, write it to a temporary file beside ``output``, check it with
    :func:`check_swapped_config`, then move it to ``output``.

    ``v2``: a ConvNeXt V2 backbone (:func:`plan_backbone_swap`). Returns the change lines, then
    the check's result and, with ``complexity``, the #params and FLOPs of the base and swapped
    models at the base's test size (:func:`complexity_line`; CPU time: seconds to a minute).
    Raises :class:`BackboneSwapError` for bad input (``output`` not
    ``.py``, existing without ``force``) or a swap that cannot be done faithfully.
    """
    if not output.endswith('.py'):
        raise BackboneSwapError(f'output {output!r} must be a .py config file')
    if osp.exists(output) and not force:
        raise BackboneSwapError(f'output {output!r} exists; pass --force to overwrite it')
    swap = plan_backbone_swap(base, arch, pretrain, output, v2)
    folder = osp.dirname(osp.abspath(output))
    created, missing = [], folder  # folders made here (deepest first), removed on failure
    while not osp.isdir(missing):
        created.append(missing)
        missing = osp.dirname(missing)
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(suffix='.py', prefix='.swap_backbone_', dir=folder)
    try:
        with os.fdopen(handle, 'w') as file:
            file.write(swap.text)
        num_params = check_swapped_config(temporary, swap.scope, swap.base_pyramid)
        os.replace(temporary, output)
    except BaseException:
        os.remove(temporary)
        for path in created:
            os.rmdir(path)
        raise
    lines = swap.changes + [f'checked: {output} loads, builds ({num_params / 1e6:.2f}M '
                            'parameters), runs its backbone at the base\'s strides, extracts '
                            'features on a probe image and builds its optimizer']
    if complexity:
        lines.append(complexity_line(swap.base_cfg, output))
    return lines
