"""The checkpoint that ``tools/train.py --resume`` continues from, held against the model first.

A checkpoint copied between file systems by a copy that died halfway, one on a bad disk, or a
file that is no checkpoint would stop ``--resume`` with torch's traceback ("PytorchStreamReader
failed reading zip archive: failed finding central directory"). Each candidate is read whole
(``torch.load(weights_only=True)``) and its ``state_dict`` held against the model's tensors
(names and shapes) before mmengine resumes from it. With ``--resume`` alone a candidate that
fails is passed over with a warning that names it and says why, and the next newest is tried;
``--resume CHECKPOINT`` names one file, which must pass. No checksum is kept beside the files:
reading a file whole finds a truncated or unreadable one, at the cost of reading it twice (the
check, then mmengine's resume).
"""
import glob
import os.path as osp

import torch
from mmengine.model import is_model_wrapper

from mmconvnext.models.backbones.checkpoint_formats import whole_model_state_dict
from .hooks.preemption_hook import PREEMPTION_CHECKPOINT


class ResumeError(RuntimeError):
    """No checkpoint that ``--resume`` can continue from (the message says which and why)."""


def resume_candidates(work_dir):
    """The checkpoints of ``work_dir``, newest first: the file ``last_checkpoint`` names (if it
    exists), then ``epoch_*.pth``, ``iter_*.pth`` and ``preempted.pth`` from the most recently
    written."""
    named = []
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as file:
            path = file.read().strip()
        if path and osp.isfile(path):
            named.append(path)
    written = sorted([path for pattern in ('epoch_*.pth', 'iter_*.pth', PREEMPTION_CHECKPOINT)
                      for path in glob.glob(osp.join(work_dir, pattern))],
                     key=osp.getmtime, reverse=True)
    return list(dict.fromkeys(named + written))


def unusable_reason(path, model):
    """Why the checkpoint at ``path`` cannot resume ``model``'s training, or None if it can."""
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError, ...
        reason = str(err).strip().splitlines()[0] if str(err).strip() else ''
        return f'unreadable, truncated or not a checkpoint ({type(err).__name__}: {reason})'
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get('state_dict'), dict):
        return 'not a training checkpoint: no state_dict'
    if not isinstance(checkpoint.get('meta'), dict):
        return 'not a training checkpoint: no meta (epoch, iteration)'
    saved = whole_model_state_dict(checkpoint)
    model = model.module if is_model_wrapper(model) else model
    for key, tensor in model.state_dict().items():
        if key not in saved:
            return f'it lacks the model\'s {key}'
        if not torch.is_tensor(saved[key]) or saved[key].shape != tensor.shape:
            shape = tuple(saved[key].shape) if torch.is_tensor(saved[key]) else saved[key]
            return f'{key} is {shape} there, {tuple(tensor.shape)} in the model'
    return None


def choose_resume_checkpoint(requested, work_dir, model, warn):
    """The checkpoint ``--resume`` continues from, or None (start a new training).

    Args:
        requested (str): ``'auto'`` (``--resume`` alone): the newest usable checkpoint of
            ``work_dir``, None if ``work_dir`` holds none; or a path (``--resume CHECKPOINT``).
        work_dir (str): the run's work dir.
        model (nn.Module): the model to resume (wrapped or not).
        warn (callable): takes the line that names each passed-over candidate and why.

    Raises:
        ResumeError: the named checkpoint, or every candidate of ``work_dir``, is unusable.
    """
    if requested != 'auto':
        reason = unusable_reason(requested, model) if osp.isfile(requested) else 'no such file'
        if reason:
            raise ResumeError(f'--resume {requested}: {reason}')
        return requested
    candidates = resume_candidates(work_dir)
    for path in candidates:
        reason = unusable_reason(path, model)
        if reason is None:
            return path
        warn(f'--resume passes over {path}: {reason}')
    if candidates:
        raise ResumeError(f'--resume: none of the {len(candidates)} checkpoints in {work_dir} can '
                          'resume this training (each is named above, with why); start a new '
                          'training without --resume, or name a checkpoint with --resume PATH')
    return None
