"""Reading the base config: its file or package path, its scope and task, its model dict."""
import os.path as osp

from mmengine.config import Config
from mmengine.hub import get_config

from mmconvnext.apis.inference_model import TASK_SCOPES
from .errors import BackboneSwapError

#: default scope -> task of the paper recipe
SCOPE_TASKS = {scope: task for scope, (task, _) in TASK_SCOPES.items()}


def load_base_config(base):
    """``base`` (a config file, or an ``mmdet::`` / ``mmseg::`` path) -> (Config, default scope).

    Raises :class:`BackboneSwapError` for a missing file, another scope, or no
    ``model.backbone``.
    """
    prefix, sep, _ = base.partition('::')
    if sep:
        if prefix not in SCOPE_TASKS:
            raise BackboneSwapError(f'base config {base!r}: only mmdet:: and mmseg:: package '
                                    f'configs are supported, not {prefix}::')
        try:
            cfg = get_config(base)
        except FileNotFoundError as err:
            raise BackboneSwapError(f'base config {base!r} not found: {err}') from None
    elif not osp.isfile(base):
        raise BackboneSwapError(f'base config {base!r} does not exist')
    else:
        cfg = Config.fromfile(base)
    scope = cfg.get('default_scope', prefix if sep else None)
    if scope not in SCOPE_TASKS:
        raise BackboneSwapError(f'base config {base!r} has default_scope={scope!r}; only mmdet and '
                                'mmseg configs can be swapped')
    if not isinstance(cfg.get('model'), dict) or not cfg.model.get('backbone'):
        raise BackboneSwapError(f'base config {base!r} has no model.backbone to replace')
    return cfg, scope


def base_reference(base, output):
    """``_base_`` of the child: package paths as given; a file relative to ``output``'s folder
    where the two share a folder below the root (a repository, say), else absolute."""
    if '::' in base:
        return base
    base_path = osp.abspath(base)
    if output is None:
        return base_path
    folder = osp.dirname(osp.abspath(output))
    if osp.commonpath([base_path, folder]) == osp.sep:
        return base_path
    return osp.relpath(base_path, folder)


def without_scope(value):
    """``value`` without the ``_scope_`` keys mmengine adds to dicts from package bases."""
    if isinstance(value, dict):
        return {key: without_scope(item) for key, item in value.items() if key != '_scope_'}
    if isinstance(value, (list, tuple)):
        return type(value)(without_scope(item) for item in value)
    return value
