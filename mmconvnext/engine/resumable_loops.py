"""Train loops that resume exactly where a run stopped; ``tools/train.py`` puts them in place of
mmengine's ``EpochBasedTrainLoop`` / ``IterBasedTrainLoop`` (same arguments).

mmengine 0.10's loops resume at the checkpoint's epoch or iteration, not at its data:

- ``EpochBasedTrainLoop`` restarts the checkpoint's epoch at its first batch, so after a
  mid-epoch checkpoint (a preemption's) the epoch's first batches are trained twice;
- ``IterBasedTrainLoop`` loads and drops every batch already trained (hours into a 160k
  schedule);
- neither restores a random generator, and a config without ``randomness.seed`` draws a new
  sampler seed at every start: a resumed run trains on another data order.

These loops:

- keep in each checkpoint (the message hub's runtime info, which mmengine saves and resumes)
  the sampler's seed and, for epochs, how many batches of the epoch are done;
- on resume, skip those batches by index, without loading them
  (:class:`~.seeded_batches.SeededBatchSampler`): no sample is trained twice, none is left out;
- give each sample (:mod:`.seeded_batches`) and each iteration (RPN / RoI samplers, drop path,
  on every device) a seed derived from the run's seed, the rank and the position.

So a run interrupted anywhere and resumed ends with the weights of the uninterrupted run, bit for
bit, where the kernels are deterministic (on CPU; on CUDA see ``docs/training.md``).
"""
from mmengine.dataset import InfiniteSampler
from mmengine.dist import get_rank
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop
from mmengine.runner.loops import _InfiniteDataloaderIterator

from mmconvnext.registry import LOOPS
from .seeded_batches import ITERATION_SEED, derived_seed, seed_batches, seed_generators

#: Runtime-info keys (saved in checkpoints): the train sampler's seed; the epoch and the number
#: of its batches done when the checkpoint was written.
SAMPLER_SEED_KEY, EPOCH_POSITION_KEY = 'train_sampler_seed', 'train_epoch_position'


def seeded_dataloader(runner, dataloader):
    """``dataloader`` (built from its config as mmengine's loops build it) with seeded batches
    (:func:`~.seeded_batches.seed_batches`), before any iterator of it starts workers."""
    if isinstance(dataloader, dict):
        dataloader = runner.build_dataloader(
            dataloader, seed=runner.seed,
            diff_rank_seed=runner._randomness_cfg.get('diff_rank_seed', False))
    seed_batches(dataloader, runner.seed, get_rank())
    return dataloader


def restore_seeds(loop):
    """Give ``loop``'s sampler the seed its checkpoint recorded (or record the sampler's seed in
    a new run), and its batches the run's seed, which mmengine has resumed by now."""
    info = loop.runner.message_hub.runtime_info
    sampler = loop.batches.sampler
    if hasattr(sampler, 'seed'):
        if SAMPLER_SEED_KEY in info:
            sampler.seed = info[SAMPLER_SEED_KEY]
        else:
            loop.runner.message_hub.update_info(SAMPLER_SEED_KEY, sampler.seed)
    loop.batches.seed = loop.runner.seed


def seed_iteration(loop):
    """Seed every generator for iteration ``loop.iter`` of this rank."""
    seed_generators(derived_seed(ITERATION_SEED, loop.runner.seed, get_rank(), loop.iter),
                    devices=True)


@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(EpochBasedTrainLoop):
    """mmengine's ``EpochBasedTrainLoop`` that resumes mid-epoch at the next batch, with seeded
    samples and iterations (module docstring)."""

    def __init__(self, runner, dataloader, *args, **kwargs):
        super().__init__(runner, seeded_dataloader(runner, dataloader), *args, **kwargs)
        self.batches = self.dataloader.batch_sampler

    def run(self):
        restore_seeds(self)
        position = self.runner.message_hub.runtime_info.get(EPOCH_POSITION_KEY)
        if position and position['epoch'] == self._epoch and position['batches']:
            self.batches.skip = position['batches']
            where = (f'at batch {position["batches"] + 1} of {len(self.dataloader)}'
                     if position['batches'] < len(self.dataloader) else
                     'after its last batch, at its end (epoch hooks, validation)')
            self.runner.logger.info(f'resuming epoch {self._epoch + 1} {where}: the batches done '
                                    'are skipped by index, not loaded')
        return super().run()

    def run_epoch(self):
        """mmengine's epoch, counting batches from the first one not skipped."""
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        first = self.batches.skip
        for idx, data_batch in enumerate(self.dataloader, start=first):
            self.run_iter(idx, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1

    def run_iter(self, idx, data_batch):
        """mmengine's iteration, after recording the epoch position its checkpoints resume at
        and seeding the generators."""
        self.runner.message_hub.update_info(EPOCH_POSITION_KEY,
                                            dict(epoch=self._epoch, batches=idx + 1))
        seed_iteration(self)
        super().run_iter(idx, data_batch)


@LOOPS.register_module()
class ResumableIterBasedTrainLoop(IterBasedTrainLoop):
    """mmengine's ``IterBasedTrainLoop`` that resumes without loading the batches already
    trained (with an ``InfiniteSampler``; another sampler's are loaded and dropped, as mmengine
    does), with seeded samples and iterations (module docstring)."""

    def __init__(self, runner, dataloader, *args, **kwargs):
        super().__init__(runner, seeded_dataloader(runner, dataloader), *args, **kwargs)
        self.batches = self.dataloader.batch_sampler

    def run(self):
        """mmengine's run, resuming at batch ``iter`` of the (restored) sampler."""
        restore_seeds(self)
        sampler = self.batches.sampler
        by_index = isinstance(sampler, InfiniteSampler)
        if by_index:
            # one index stream serves every pass, and the iterator mmengine makes on construction
            # has read from it: a new stream, from the restored seed
            sampler.indices = sampler._indices_of_rank()
            self.batches.skip = self._iter
        self.dataloader_iterator = _InfiniteDataloaderIterator(self.dataloader)
        self.runner.call_hook('before_train')
        self.runner.call_hook('before_train_epoch')
        if self._iter > 0:
            how = 'skipped by index' if by_index else 'loaded and dropped (not an InfiniteSampler)'
            self.runner.logger.info(f'resuming at iteration {self._iter + 1}: the batches done '
                                    f'are {how}')
            if not by_index:
                for _ in range(self._iter):
                    next(self.dataloader_iterator)
        while self._iter < self._max_iters and not self.stop_training:
            self.runner.model.train()
            data_batch = next(self.dataloader_iterator)
            self.run_iter(data_batch)
            self._decide_current_val_interval()
            if (self.runner.val_loop is not None and self._iter >= self.val_begin
                    and (self._iter % self.val_interval == 0 or self._iter == self._max_iters)):
                self.runner.val_loop.run()
        self.runner.call_hook('after_train_epoch')
        self.runner.call_hook('after_train')
        return self.runner.model

    def run_iter(self, data_batch):
        """mmengine's iteration, after seeding the generators."""
        seed_iteration(self)
        super().run_iter(data_batch)


#: mmengine's train loops and the loops that replace them.
RESUMABLE_LOOPS = {
    'EpochBasedTrainLoop': ResumableEpochBasedTrainLoop,
    'IterBasedTrainLoop': ResumableIterBasedTrainLoop,
}


def use_resumable_loop(cfg):
    """Put the resumable loop of ``cfg.train_cfg``'s mmengine loop in its place (a ``train_cfg``
    with ``by_epoch`` instead of ``type`` included). Returns a line for the training log when the
    config's loop is another one (its resumption is that loop's own), else None."""
    train_cfg = cfg.get('train_cfg')
    if not train_cfg:
        return None
    if 'type' not in train_cfg and 'by_epoch' in train_cfg:
        by_epoch = train_cfg.pop('by_epoch')
        train_cfg.type = 'EpochBasedTrainLoop' if by_epoch else 'IterBasedTrainLoop'
    loop_type = train_cfg.get('type')
    name = loop_type.split('.')[-1] if isinstance(loop_type, str) else getattr(
        loop_type, '__name__', str(loop_type))
    if name in RESUMABLE_LOOPS:
        train_cfg.type = f'mmconvnext.{RESUMABLE_LOOPS[name].__name__}'
        return None
    if name in {loop.__name__ for loop in RESUMABLE_LOOPS.values()}:
        return None
    return (f'train_cfg.type {name} is not one of mmengine\'s loops '
            f'({", ".join(RESUMABLE_LOOPS)}): a resumed run continues as that loop does, not '
            'necessarily at the next batch')
