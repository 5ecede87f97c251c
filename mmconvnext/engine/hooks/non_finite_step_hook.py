"""Stop a training at a non-finite loss or gradient before it reaches the weights, and never save
non-finite weights.

Where the checks sit (mmengine 0.10): ``BaseModel.train_step`` runs the forward, sums the loss
terms (``parse_losses``) and calls ``OptimWrapper.update_params`` (backward, ``step``,
``zero_grad``); a hook's ``after_train_iter`` runs only after the step, too late for fp32. So the
hook adds

- a forward hook on the model, which keeps the loss dict of the iteration (no copy, no sync);
- a step pre-hook on the torch optimizer (``Optimizer.register_step_pre_hook``), which runs
  inside ``optimizer.step()`` before any parameter changes. In fp32 (``OptimWrapper``) it checks
  the summed loss and the largest absolute gradient (an inf-norm over all gradients: no overflow
  of its own) in one host-device sync per step, and raises :class:`NonFiniteStepError` when
  either is NaN / inf, before the update.
- Under AMP (``AmpOptimWrapper``, an enabled ``loss_scaler``) torch's GradScaler calls
  ``optimizer.step()`` only when the unscaled gradients are finite and lowers the scale
  otherwise: the pre-hook only notes that the step ran. After the iteration, a step that was due
  (``should_update()``) but did not run is a skipped step, and a non-finite logged loss (already
  read by mmengine's ``RuntimeInfoHook``) is a bad step too; each is logged with the non-finite
  loss terms and the new loss scale. The forward of a bad step also wrote its NaN / inf into the
  BatchNorm running statistics: the model's buffers, copied before each iteration (on the
  device, no sync), are restored. More than ``max_skips_in_row`` bad steps in a row stop the
  run.

``before_save_checkpoint`` refuses weights that hold NaN / inf (the checkpoint's ``state_dict``,
already on the CPU): nothing is written and ``last_checkpoint`` is not moved. Every error names
the iteration, the loss terms that went non-finite and the last good checkpoint.
"""
import math

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapperDict
from mmengine.runner import EpochBasedTrainLoop

from mmconvnext.registry import HOOKS, register_downstream

#: How many parameter names an error lists before "and N more".
NAMES_SHOWN = 5


class NonFiniteStepError(RuntimeError):
    """The training stopped at a non-finite loss, gradient or weight (see the message)."""


def _names(names):
    """``a, b, c`` (at most :data:`NAMES_SHOWN`, then ``and N more``)."""
    shown = ', '.join(names[:NAMES_SHOWN])
    return shown + (f' and {len(names) - NAMES_SHOWN} more' if len(names) > NAMES_SHOWN else '')


def _float(value):
    """A logged value (tensor, maybe with grad, or number) as a float (a sync for a tensor)."""
    return float(value.detach() if isinstance(value, torch.Tensor) else value)


def _bad_losses(log_vars):
    """``non-finite loss: loss_cls=nan, ...``: the loss terms of ``log_vars`` (``parse_losses``'
    output: ``loss``, the sum, then each term) that are NaN / inf, or ``finite loss terms``."""
    if not log_vars:
        return 'no loss seen'
    values = {name: _float(value) for name, value in log_vars.items()
              if name != 'loss' and 'loss' in name}
    bad = [f'{name}={value:g}' for name, value in values.items() if not math.isfinite(value)]
    return f'non-finite loss: {", ".join(bad)}' if bad else 'finite loss terms'


@HOOKS.register_module()
class NonFiniteStepHook(Hook):
    """Stop the training at a non-finite loss or gradient, before the optimizer step (fp32) or
    after more than ``max_skips_in_row`` steps in a row that AMP's loss scaler skipped; refuse
    to save non-finite weights (see the module doc).

    Args:
        max_skips_in_row (int): AMP only: bad steps in a row that are logged and tolerated; the
            next one stops the run. Default 20: torch's dynamic scale starts at 2**16, and 20
            halvings bring it to 1/16, well below where fp16 gradients overflow for a scale
            that is merely too large.

    The configs' default (``configs/_base_/``):
    ``custom_hooks = [dict(type='mmconvnext.NonFiniteStepHook')]``; also registered as
    ``NonFiniteStepHook`` in mmdet's and mmseg's registries.
    """

    def __init__(self, max_skips_in_row=20):
        if not isinstance(max_skips_in_row, int) or max_skips_in_row < 0:
            raise ValueError(f'NonFiniteStepHook: max_skips_in_row must be an int >= 0, got '
                             f'{max_skips_in_row!r}')
        self.max_skips_in_row = max_skips_in_row
        self._handles = []
        self._model, self._scaler = None, None
        self._buffers, self._buffers_before = [], []
        self._losses = None
        self._stepped = False
        self._skips_in_row = 0
        self._last_good_checkpoint = None

    # --- set-up -------------------------------------------------------------------------------

    def before_train(self, runner):
        """Hook the model's forward and the optimizer's step (see the module doc)."""
        optim_wrapper = runner.optim_wrapper
        if isinstance(optim_wrapper, OptimWrapperDict):
            raise TypeError('NonFiniteStepHook watches one OptimWrapper / AmpOptimWrapper; this '
                            f'run has several: {list(optim_wrapper.keys())}')
        scaler = getattr(optim_wrapper, 'loss_scaler', None)
        self._scaler = scaler if scaler is not None and scaler.is_enabled() else None
        self._model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        self._buffers = list(self._model.buffers()) if self._scaler is not None else []
        self._buffers_before = [buffer.detach().clone() for buffer in self._buffers]
        self._handles = [
            self._model.register_forward_hook(self._keep_losses),
            optim_wrapper.optimizer.register_step_pre_hook(
                lambda optimizer, args, kwargs: self._before_step(runner, optimizer)),
        ]
        self._skips_in_row = 0

    def after_train(self, runner):
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._losses = None
        self._buffers, self._buffers_before = [], []

    def _keep_losses(self, module, args, output):
        """Forward hook: keep the loss dict of ``mode='loss'`` (other modes return lists)."""
        if isinstance(output, dict):
            self._losses = output

    # --- per iteration ------------------------------------------------------------------------

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self._stepped = False
        self._last_good_checkpoint = runner.message_hub.get_info('last_ckpt')
        with torch.no_grad():
            for buffer, copy in zip(self._buffers, self._buffers_before):
                copy.copy_(buffer)

    def _before_step(self, runner, optimizer):
        """Optimizer step pre-hook: note the step; in fp32, raise before a non-finite update."""
        self._stepped = True
        if self._scaler is not None:
            return  # GradScaler steps only with finite gradients
        grads = [param.grad for group in optimizer.param_groups for param in group['params']
                 if param.grad is not None]
        loss, log_vars = self._model.parse_losses(self._losses) if self._losses else (None, None)
        checked = [value.detach().float().reshape(()) for value in (
            torch.nn.utils.get_total_norm(grads, norm_type=math.inf) if grads else None, loss)
            if value is not None]
        if not checked or torch.isfinite(torch.stack(checked)).all().item():  # the one sync
            return
        bad_grads = [name for name, param in self._model.named_parameters()
                     if param.grad is not None and not torch.isfinite(param.grad).all()]
        gradients = (f'non-finite gradients in {len(bad_grads)} parameters: {_names(bad_grads)}'
                     if bad_grads else 'finite gradients')
        self._stop(runner, self._current(runner), f'{_bad_losses(log_vars)}; {gradients}; stopped '
                   'before the optimizer step: no update was applied')

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        """AMP: count, log and bound the bad steps (see the module doc)."""
        self._losses = None
        if self._scaler is None:
            return
        skipped = runner.optim_wrapper.should_update() and not self._stepped
        loss_finite = outputs is None or 'loss' not in outputs or math.isfinite(
            _float(outputs['loss']))
        if not skipped and loss_finite:
            self._skips_in_row = 0
            return
        self._skips_in_row += 1
        with torch.no_grad():
            for buffer, copy in zip(self._buffers, self._buffers_before):
                buffer.copy_(copy)
        what = ('AMP skipped the step (inf / NaN gradients)' if skipped else
                'the step was taken (finite gradients)')
        message = (f'{_bad_losses(outputs)}; {what}; loss scale now '
                   f'{self._scaler.get_scale():g}; {self._skips_in_row} bad step(s) in a row '
                   f'(the run stops after {self.max_skips_in_row})')
        if self._skips_in_row > self.max_skips_in_row:
            self._stop(runner, self._current(runner), message)
        runner.logger.warning(f'{self._current(runner)}: {message}')

    # --- checkpoints --------------------------------------------------------------------------

    def before_save_checkpoint(self, runner, checkpoint):
        """Refuse to save weights that hold NaN / inf (checked on the CPU copy)."""
        bad = [name for name, tensor in checkpoint['state_dict'].items()
               if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
        if bad:
            meta = checkpoint['meta']  # CheckpointHook's: the iteration / epoch just finished
            self._stop(runner, self._where(runner, meta['iter'], meta['epoch']),
                       f'non-finite weights in {len(bad)} tensors: {_names(bad)}; the checkpoint '
                       'was not saved')

    # --- messages -----------------------------------------------------------------------------

    @staticmethod
    def _where(runner, iteration, epoch):
        """``iteration I (epoch E)`` (1-based; the epoch only in epoch-based training)."""
        if isinstance(runner.train_loop, EpochBasedTrainLoop):
            return f'iteration {iteration} (epoch {epoch})'
        return f'iteration {iteration}'

    def _current(self, runner):
        """:meth:`_where` of the iteration in progress."""
        return self._where(runner, runner.iter + 1, runner.epoch + 1)

    def _stop(self, runner, where, message):
        """Log and raise :class:`NonFiniteStepError` with ``where``, ``message`` and the last good
        checkpoint."""
        message = (f'{where}: {message}. Last good checkpoint: '
                   f'{self._last_good_checkpoint or "none saved yet"}')
        runner.logger.error(message)
        raise NonFiniteStepError(message)


register_downstream(NonFiniteStepHook, 'HOOKS')
