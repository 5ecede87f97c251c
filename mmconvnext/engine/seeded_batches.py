"""Training batches whose randomness depends on where they are in the run, not on its history.

A sample's random transforms (flips, crops, resizes) draw from python's, numpy's and torch's
global generators. In the main process (``num_workers=0``) and in each dataloader worker, those
generators carry on from sample to sample, so after a resume, a worker that starts mid-epoch
draws other numbers for the same sample than the worker of the uninterrupted run did.

:func:`seed_batches` makes each sample draw from a seed of its own instead: the dataloader's
batch sampler is wrapped by :class:`SeededBatchSampler`, which yields every index as a
:class:`SeededIndex` carrying ``derived_seed(run seed, rank, epoch, batch position, slot)``, and
the dataset reads each such index after seeding the three generators with it
(:class:`SeededSamples`, the dataset's ``__getitems__``, which torch's fetcher calls in the worker).
:class:`SeededBatchSampler` also skips the first batches of its next pass by index, without
loading them: a resumed epoch goes on where it stopped.
"""
import random

import numpy as np
import torch

#: Kinds of derived seeds (the second part of :func:`derived_seed`'s key).
SAMPLE_SEED, ITERATION_SEED = 0, 1


def derived_seed(*key):
    """A 32-bit seed for ``key`` (non-negative ints), independent of any generator's state."""
    return int(np.random.SeedSequence([int(part) for part in key]).generate_state(1)[0])


def seed_generators(seed, devices=False):
    """Seed python's ``random``, numpy's global and torch's CPU generator (``devices``: also
    every CUDA device's) with ``seed``."""
    random.seed(seed)
    np.random.seed(seed)
    if devices:
        torch.manual_seed(seed)
    else:
        torch.default_generator.manual_seed(seed)


class SeededIndex(int):
    """A dataset index with the ``seed`` its sample's random transforms draw from."""

    def __new__(cls, index, seed):
        instance = super().__new__(cls, index)
        instance.seed = seed
        return instance

    def __reduce__(self):
        return SeededIndex, (int(self), self.seed)


class SeededSamples:
    """``dataset.__getitems__`` (torch's fetcher reads a batch through it): each sample read
    after :func:`seed_generators` with its index's seed; plain indices read as they are."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __call__(self, indices):
        samples = []
        for index in indices:
            if isinstance(index, SeededIndex):
                seed_generators(index.seed)
            samples.append(self.dataset[int(index)])
        return samples


class SeededBatchSampler:
    """The batches of ``batch_sampler`` as lists of :class:`SeededIndex`.

    Args:
        batch_sampler: torch's ``BatchSampler`` or mmdet's ``AspectRatioBatchSampler`` (anything
            with ``sampler`` that yields lists of indices).
        seed (int): the run's seed; ``rank`` (int): this process's rank. Both are part of each
            sample's seed, with the epoch (``sampler.epoch``, 0 for samplers without epochs),
            the batch's position in the pass and the sample's slot in the batch.

    ``skip`` (int, default 0): batches of the next pass to skip, by index (the next pass starts
    at position ``skip``); it applies once.
    """

    def __init__(self, batch_sampler, seed, rank):
        self.batch_sampler = batch_sampler
        self.seed, self.rank, self.skip = seed, rank, 0

    @property
    def sampler(self):
        """The sampler the batches come from (mmengine's ``DistSamplerSeedHook`` sets its
        epoch)."""
        return self.batch_sampler.sampler

    def __len__(self):
        return len(self.batch_sampler)

    def __iter__(self):
        skip, self.skip = self.skip, 0
        epoch = getattr(self.sampler, 'epoch', 0)
        for position, batch in enumerate(self.batch_sampler):
            if position >= skip:
                yield [
                    SeededIndex(index, derived_seed(SAMPLE_SEED, self.seed, self.rank, epoch,
                                                    position, slot))
                    for slot, index in enumerate(batch)
                ]


class SeedingError(ValueError):
    """A dataloader whose samples :func:`seed_batches` cannot seed."""


def seed_batches(dataloader, seed, rank):
    """Make ``dataloader`` (built; no iterator of it may exist yet: a worker forked before
    reads samples unseeded) yield :class:`SeededIndex` batches read
    through :class:`SeededSamples`; returns its :class:`SeededBatchSampler`.

    Raises:
        SeedingError: the dataloader has no batch sampler (``batch_size=None``), or its dataset
            reads batches itself (its own ``__getitems__``).
    """
    if dataloader.batch_sampler is None:
        raise SeedingError('the train dataloader has no batch sampler (batch_size=None)')
    dataset = dataloader.dataset
    if not isinstance(getattr(dataset, '__getitems__', None), (SeededSamples, type(None))):
        raise SeedingError(f'{type(dataset).__name__} reads its batches itself (__getitems__)')
    batches = SeededBatchSampler(dataloader.batch_sampler, seed, rank)
    # DataLoader refuses a new batch_sampler once built, since an iterator of the old one might
    # exist; none does yet (docstring)
    object.__setattr__(dataloader, 'batch_sampler', batches)
    dataset.__getitems__ = SeededSamples(dataset)
    return batches
