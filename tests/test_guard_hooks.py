"""The guard hooks stay on whatever a config does to ``custom_hooks``; a config turns one off only
by naming it (``mmconvnext.engine.guard_hooks``); ``tools/train.py`` logs what it changed (its
run is in ``test_tools``)."""
import pytest
from mmengine.config import Config
from tiny_runs import CONFIG_DIR

from mmconvnext.engine.guard_hooks import GuardHookError, add_custom_hook, ensure_guard_hooks

GUARDS = [dict(type='mmconvnext.SkippedSamplesHook'), dict(type='mmconvnext.NonFiniteStepHook')]


def test_a_config_that_replaces_custom_hooks_keeps_both_guards():
    cfg = Config(dict(custom_hooks=[dict(type='EMAHook', momentum=0.0002)]))
    notes = ensure_guard_hooks(cfg)
    assert cfg.custom_hooks == [dict(type='EMAHook', momentum=0.0002), *GUARDS]
    assert notes == [
        "SkippedSamplesHook added: the config's custom_hooks lacked it (to turn it off, "
        "disabled_guards = ['SkippedSamplesHook'])",
        "NonFiniteStepHook added: the config's custom_hooks lacked it (to turn it off, "
        "disabled_guards = ['NonFiniteStepHook'])"]
    cfg = Config(dict())  # no custom_hooks at all
    assert len(ensure_guard_hooks(cfg)) == 2 and cfg.custom_hooks == GUARDS


def test_each_guard_is_kept_once_with_the_configs_settings():
    cfg = Config(dict(custom_hooks=[
        dict(type='NonFiniteStepHook', max_skips_in_row=3), dict(type='EMAHook'),
        dict(type='mmconvnext.NonFiniteStepHook'), dict(type='mmconvnext.SkippedSamplesHook')]))
    notes = ensure_guard_hooks(cfg)
    assert cfg.custom_hooks == [dict(type='NonFiniteStepHook', max_skips_in_row=3),
                                dict(type='EMAHook'), dict(type='mmconvnext.SkippedSamplesHook')]
    assert notes == ['custom_hooks: a second NonFiniteStepHook dropped (the first one is kept)']


def test_a_guard_is_off_only_by_name_and_says_so():
    cfg = Config(dict(custom_hooks=list(GUARDS), disabled_guards=['NonFiniteStepHook']))
    notes = ensure_guard_hooks(cfg)
    assert cfg.custom_hooks == GUARDS[:1]
    assert notes == ['custom_hooks: NonFiniteStepHook dropped, the config disables it',
                     'NonFiniteStepHook is off: the config disables it (disabled_guards)']
    with pytest.raises(GuardHookError, match="'EMAHook' is not a guard hook; the guards are "
                                             'SkippedSamplesHook, NonFiniteStepHook'):
        ensure_guard_hooks(Config(dict(disabled_guards=['EMAHook'])))


@pytest.mark.parametrize('name', ['cascade_convnext_t', 'upernet_convnextv2_b',
                                  'demo/mask_rcnn_convnext_atto_demo'])
def test_the_configs_guards_are_left_as_they_are(name):
    cfg = Config.fromfile(CONFIG_DIR / f'{name}.py')
    hooks = list(cfg.custom_hooks)
    assert ensure_guard_hooks(cfg) == [] and cfg.custom_hooks == hooks


def test_a_tool_adds_its_hook_once():
    from mmconvnext.engine.hooks import CheckpointLoadReportHook, ProgressBarHook
    cfg = Config(dict(custom_hooks=[dict(type='CheckpointLoadReportHook'), ProgressBarHook()]))
    for hook in (CheckpointLoadReportHook, ProgressBarHook):
        add_custom_hook(cfg, hook)  # both there already: bare type name, instance
    assert len(cfg.custom_hooks) == 2
    cfg = Config(dict())
    add_custom_hook(cfg, ProgressBarHook)
    assert cfg.custom_hooks == [dict(type='mmconvnext.ProgressBarHook')]
