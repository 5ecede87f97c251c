"""``tools/train.py --resume`` holds each candidate checkpoint against the model before it trusts
it (``mmconvnext.engine.resume_checkpoint``); the end-to-end run is in ``test_tools``."""
import os
import time

import pytest
import torch

from mmconvnext.engine.resume_checkpoint import (ResumeError, choose_resume_checkpoint,
                                                 resume_candidates)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))


def write(path, obj, age_s):
    """``obj`` saved at ``path`` (raw bytes as they are), written ``age_s`` seconds ago."""
    if isinstance(obj, bytes):
        path.write_bytes(obj)
    else:
        torch.save(obj, path)
    stamp = time.time() - age_s
    os.utime(path, (stamp, stamp))
    return str(path)


def checkpoint(model, iteration):
    return {'meta': {'iter': iteration}, 'state_dict': model.state_dict(),
            'optimizer': {'state': {}, 'param_groups': []}}


def test_newest_usable_checkpoint_after_passing_over_the_bad_ones(model, tmp_path):
    good = write(tmp_path / 'iter_2.pth', checkpoint(model, 2), age_s=50)
    whole = (tmp_path / 'iter_2.pth').read_bytes()
    truncated = write(tmp_path / 'iter_8.pth', whole[:len(whole) // 2], age_s=10)
    text = write(tmp_path / 'iter_7.pth', b'not a checkpoint\n', age_s=20)
    other = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Linear(5, 2))
    other_model = write(tmp_path / 'iter_6.pth', checkpoint(other, 6), age_s=30)
    no_meta = write(tmp_path / 'iter_4.pth', {'state_dict': model.state_dict()}, age_s=40)
    preempted = write(tmp_path / 'preempted.pth', checkpoint(model, 3), age_s=45)
    (tmp_path / 'last_checkpoint').write_text(truncated)
    assert resume_candidates(tmp_path) == [truncated, text, other_model, no_meta, preempted, good]

    warnings = []
    assert choose_resume_checkpoint('auto', str(tmp_path), model, warnings.append) == preempted

    reasons = [line.split(': ', 1)[1] for line in warnings]
    assert [line.split(':')[0] for line in warnings] == [
        f'--resume passes over {path}' for path in (truncated, text, other_model, no_meta)]
    assert reasons[0].startswith('unreadable, truncated or not a checkpoint (RuntimeError: ')
    assert reasons[1].startswith('unreadable, truncated or not a checkpoint')
    assert reasons[2] == '0.weight is (5, 4) there, (3, 4) in the model'
    assert reasons[3] == 'not a training checkpoint: no meta (epoch, iteration)'


def test_a_ddp_checkpoint_resumes_the_bare_model_and_the_pointer_goes_first(model, tmp_path):
    ddp_state = {f'module.{key}': value for key, value in model.state_dict().items()}
    older = write(tmp_path / 'epoch_1.pth', {'meta': {}, 'state_dict': ddp_state}, age_s=20)
    newer = write(tmp_path / 'epoch_2.pth', checkpoint(model, 2), age_s=10)
    (tmp_path / 'last_checkpoint').write_text(older)
    assert choose_resume_checkpoint('auto', str(tmp_path), model, pytest.fail) == older
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'gone.pth'))  # a stale pointer
    assert resume_candidates(tmp_path) == [newer, older]


def test_no_usable_checkpoint_stops_and_none_at_all_starts_fresh(model, tmp_path):
    assert choose_resume_checkpoint('auto', str(tmp_path), model, pytest.fail) is None
    write(tmp_path / 'epoch_1.pth', b'\x80\x02garbage', age_s=10)
    warnings = []
    with pytest.raises(ResumeError, match=r'none of the 1 checkpoints in .* can resume'):
        choose_resume_checkpoint('auto', str(tmp_path), model, warnings.append)
    assert len(warnings) == 1 and 'epoch_1.pth' in warnings[0]


def test_a_named_checkpoint_must_pass_itself(model, tmp_path):
    good = write(tmp_path / 'mine.pth', checkpoint(model, 3), age_s=0)
    assert choose_resume_checkpoint(good, str(tmp_path), model, pytest.fail) == good
    with pytest.raises(ResumeError, match=r'--resume .*missing\.pth: no such file'):
        choose_resume_checkpoint(str(tmp_path / 'missing.pth'), str(tmp_path), model, pytest.fail)
    lacking = write(tmp_path / 'lacking.pth', {'meta': {}, 'state_dict': {
        '0.weight': model[0].weight}}, age_s=0)
    with pytest.raises(ResumeError, match=r"lacking\.pth: it lacks the model's 0\.bias"):
        choose_resume_checkpoint(lacking, str(tmp_path), model, pytest.fail)
