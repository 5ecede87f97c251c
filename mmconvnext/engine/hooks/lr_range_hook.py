"""Log the largest and the smallest param-group learning rate, as ConvNeXt fine-tuning logs do."""
from mmengine.hooks import Hook

from mmconvnext.registry import HOOKS


@HOOKS.register_module()
class LrRangeHook(Hook):
    """Log ``lr`` (largest group lr) and ``layer_0_lr`` (smallest) at every training iteration.

    mmengine's ``RuntimeInfoHook`` (priority VERY_HIGH, so it runs before this hook) logs the
    *first* group's lr as ``train/lr``, and ``train/base_lr`` (the configured lr, scheduled) when
    there are several groups. ``mmconvnext.LearningRateDecayOptimizerConstructor`` puts the group
    with the largest lr first, so ``train/lr`` is already the largest: this hook only adds
    ``train/layer_0_lr``, the smallest lr (the stem's under layer decay). For optimizers whose
    first group is not the largest, it also records the largest as ``train/lr``, which then is
    the current value logged for the iteration. With several optimizers (``OptimWrapperDict``)
    the keys carry the optimizer name as prefix (``{name}.lr``, ``{name}.layer_0_lr``), like
    ``RuntimeInfoHook``'s.

    Use: ``custom_hooks = [dict(type='mmconvnext.LrRangeHook')]``.
    """

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        """Update ``train/[{name}.]layer_0_lr`` (and ``train/[{name}.]lr`` if needed)."""
        for key, lrs in runner.optim_wrapper.get_lr().items():
            if key != 'lr' and not key.endswith('.lr'):
                continue  # base_lr: the scheduled configured lr, not a group's
            if lrs[0] != max(lrs):
                runner.message_hub.update_scalar(f'train/{key}', max(lrs))
            runner.message_hub.update_scalar(f'train/{key[:-2]}layer_0_lr', min(lrs))
