"""Say what a whole-model checkpoint (``load_from``, ``tools/test.py CHECKPOINT``) gives the model.

mmengine loads such a checkpoint with ``strict=False``: what does not match is skipped and, at
most, printed to the console, never logged. Fine-tuning from a COCO / ADE20K model of another zoo
or with another number of classes depends on exactly that: the class-dependent head layers keep
their fresh initialisation, the rest is loaded. This hook logs it before the load, on the
runner's logger: how many of the model's tensors come from the checkpoint, which ConvNeXt
backbone layout was renamed to ours (:func:`~mmconvnext.models.backbones.checkpoint_formats.
convert_in_place`, which the backbone applies when it loads), and by name every tensor that keeps
its initialisation (not in the checkpoint, or of another shape) and every checkpoint tensor
that the model has no place for.
"""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmconvnext.models import ConvNeXt
from mmconvnext.models.backbones.checkpoint_formats import (convert_in_place, summarise_keys,
                                                            whole_model_state_dict)
from mmconvnext.registry import HOOKS


@HOOKS.register_module()
class CheckpointLoadReportHook(Hook):
    """Log, before mmengine loads a checkpoint into the model, what it loads and what it leaves.

    Use: ``custom_hooks = [dict(type='mmconvnext.CheckpointLoadReportHook')]``; ``tools/train.py``
    and ``tools/test.py`` add it.
    """

    priority = 'VERY_LOW'

    def after_load_checkpoint(self, runner, checkpoint):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        runner.logger.info(describe_checkpoint_load(model, checkpoint))


def describe_checkpoint_load(model, checkpoint):
    """What loading ``checkpoint`` into ``model`` does, as the lines of a log message.

    ``checkpoint`` is read, not changed: its state dict is taken as mmengine's loader takes it,
    and each ConvNeXt backbone's keys are renamed on a copy as the backbone renames them.
    """
    state_dict = whole_model_state_dict(checkpoint)
    renamed = []
    for name, module in model.named_modules():
        if isinstance(module, ConvNeXt):
            prefix = f'{name}.' if name else ''
            source_format = convert_in_place(state_dict, prefix)
            if source_format:
                renamed.append(f'{prefix or "ConvNeXt."}* ({source_format} layout)')
    expected = model.state_dict()
    loaded = [key for key, value in expected.items()
              if key in state_dict and state_dict[key].shape == value.shape]
    other_shape = [f'{key} {tuple(state_dict[key].shape)} -> {tuple(value.shape)}'
                   for key, value in expected.items()
                   if key in state_dict and state_dict[key].shape != value.shape]
    missing = [key for key in expected if key not in state_dict
               and not key.endswith('num_batches_tracked')]
    unused = [key for key in state_dict if key not in expected]
    lines = [f'checkpoint load: {len(loaded)} of the model\'s {len(expected)} tensors loaded']
    if renamed:
        lines.append(f'renamed to mmconvnext\'s backbone layout: {", ".join(renamed)}')
    if other_shape:
        lines.append('kept as initialised, another shape in the checkpoint (the heads\' '
                     'class-dependent layers when the number of classes differs): '
                     + '; '.join(other_shape))
    if missing:
        lines.append(f'kept as initialised, not in the checkpoint: {summarise_keys(missing)}')
    if unused:
        lines.append(f'not used, the model has no such tensor: {summarise_keys(unused)}')
    return '\n  '.join(lines)
