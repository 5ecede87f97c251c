"""The hooks the tools keep in ``custom_hooks``, whatever a config does to it: the guards of
every training, and the tools' own additions (:func:`add_custom_hook`).

The configs' base pieces put :class:`~.hooks.NonFiniteStepHook` (a NaN / inf loss or gradient
stops the run) and :class:`~.hooks.SkippedSamplesHook` (the count of skipped bad samples in the
log) in ``custom_hooks``. A user config that sets ``custom_hooks = [dict(type='EMAHook')]``, the
usual way to add a hook, replaces that list and would drop both without a word.
:func:`ensure_guard_hooks` (``tools/train.py``) puts each back, once, unless the config turns it
off by name in ``disabled_guards``; the training log then says so.
"""
from .hooks import NonFiniteStepHook, SkippedSamplesHook

#: The guard hooks, by class name.
GUARD_HOOKS = tuple(hook.__name__ for hook in (SkippedSamplesHook, NonFiniteStepHook))


class GuardHookError(ValueError):
    """``disabled_guards`` names a hook that is not a guard."""


def ensure_guard_hooks(cfg):
    """Each guard hook of :data:`GUARD_HOOKS` once in ``cfg.custom_hooks``, unless named in the
    config's ``disabled_guards`` (a list of class names, default empty).

    A guard the config lists (as ``'mmconvnext.X'`` or ``'X'``) keeps its first entry and its
    settings; later entries of it are dropped; a missing one is appended with its defaults.

    Returns:
        list[str]: what was changed or turned off, one line each, for the training log.

    Raises:
        GuardHookError: ``disabled_guards`` names another hook.
    """
    disabled = list(cfg.get('disabled_guards', []))
    unknown = [name for name in disabled if name not in GUARD_HOOKS]
    if unknown:
        raise GuardHookError(f'disabled_guards: {", ".join(map(repr, unknown))} is not a guard '
                             f'hook; the guards are {", ".join(GUARD_HOOKS)}')
    hooks, notes, seen = [], [], set()
    for hook in cfg.get('custom_hooks', []):
        name = _guard_name(hook)
        if name in seen:
            notes.append(f'custom_hooks: a second {name} dropped (the first one is kept)')
            continue
        if name in disabled:
            notes.append(f'custom_hooks: {name} dropped, the config disables it')
            continue
        if name is not None:
            seen.add(name)
        hooks.append(hook)
    for name in GUARD_HOOKS:
        if name in disabled:
            notes.append(f'{name} is off: the config disables it (disabled_guards)')
        elif name not in seen:
            hooks.append(dict(type=f'mmconvnext.{name}'))
            notes.append(f'{name} added: the config\'s custom_hooks lacked it (to turn it off, '
                         f'disabled_guards = [{name!r}])')
    cfg.custom_hooks = hooks
    return notes


def add_custom_hook(cfg, hook_class):
    """Append ``mmconvnext.<hook_class>`` to ``cfg.custom_hooks`` unless a hook of that class
    (scoped or bare type name, or an instance) is there already."""
    hooks = cfg.get('custom_hooks', [])
    if hook_class.__name__ not in [hook_class_name(hook) for hook in hooks]:
        cfg.custom_hooks = [*hooks, dict(type=f'mmconvnext.{hook_class.__name__}')]


def hook_class_name(hook):
    """The class name of a ``custom_hooks`` entry (a config dict, scope dropped, or a hook
    instance), or None."""
    hook_type = hook.get('type') if isinstance(hook, dict) else type(hook)
    name = hook_type if isinstance(hook_type, str) else getattr(hook_type, '__name__', None)
    return name.split('.')[-1] if name else None


def _guard_name(hook):
    """The guard's class name if ``hook`` (a hook config) is one, else None."""
    name = hook_class_name(hook)
    return name if name in GUARD_HOOKS else None
