"""Keep the upstream packages' notes about their own deprecated code out of our tools' output.

mmengine, mmcv, mmseg and torch warn about deprecated APIs that *they* call (mmengine's
``import pkg_resources``, mmseg's own ``build_loss``, ...); a user can do nothing about them, and
they land in the middle of our tools' output (8 lines inside ``get_flops.py``'s table). Each one
we know is filtered here by category, emitting module and message, so that nothing else is:
warnings about the user's config or data (mmseg's ``avg_non_ignore`` or ``reduce_zero_label``
notes, an unset metric prefix, our own ``no GPU`` note, anything raised from the user's modules)
still show. ``import mmconvnext`` installs the filters (:func:`ignore_upstream_deprecations`)
before any config is read or model built; importing torch and mmengine before that emits
nothing. mmengine also *logs* two deprecation notes through its logger at the first checkpoint
save; :func:`quiet_upstream_log_notes` drops them from a runner's logger.
"""
import logging
import warnings

#: (category, emitting module, message start) of each upstream deprecation warning we filter.
#: The module is where the warning is attributed (``warnings.warn``'s ``stacklevel``).
UPSTREAM_DEPRECATIONS = (
    # setuptools >= 81 on mmengine's ``import pkg_resources`` (``is_installed`` etc., called for
    # every ``mmdet::`` / ``mmseg::`` base); ``is_installed`` also reloads it: ``importlib``.
    (UserWarning, r'(mmengine\.utils\.package_utils|importlib)$',
     'pkg_resources is deprecated as an API'),
    # mmseg's heads build their losses with mmseg's own deprecated builder.
    (UserWarning, r'mmseg\.models\.builder$', '``build_loss`` would be deprecated soon'),
    # mmengine 0.10's AmpOptimWrapper builds torch.cuda.amp.GradScaler (GPU runs).
    (FutureWarning, r'mmengine\.optim\.optimizer\.amp_optimizer_wrapper$',
     r'`torch\.cuda\.amp\.GradScaler\(args\.\.\.\)` is deprecated'),
    # mmcv's transformer module re-exports an op it moved (hidden by default; -W / dev mode).
    (ImportWarning, r'mmcv\.cnn\.bricks\.transformer$',
     '``MultiScaleDeformableAttention`` has been moved'),
)

#: Message starts of the deprecation notes mmengine logs (not warns) when it saves a checkpoint.
UPSTREAM_LOG_NOTES = (
    '"FileClient" will be deprecated in future',
    '"HardDiskBackend" is the alias of "LocalBackend"',
)


def ignore_upstream_deprecations():
    """Install a ``warnings`` filter for each entry of :data:`UPSTREAM_DEPRECATIONS`.

    They go in front of the filters already there (``-W``, ``PYTHONWARNINGS``), as
    ``warnings.filterwarnings`` puts them; installing them twice adds nothing.
    """
    for category, module, message in UPSTREAM_DEPRECATIONS:
        warnings.filterwarnings('ignore', message=message, category=category, module=module)


class UpstreamLogNoteFilter(logging.Filter):
    """Drops the log records that start with one of :data:`UPSTREAM_LOG_NOTES`."""

    def filter(self, record):
        return not str(record.msg).startswith(UPSTREAM_LOG_NOTES)


def quiet_upstream_log_notes(logger):
    """Add :class:`UpstreamLogNoteFilter` to ``logger`` (a runner's ``MMLogger``) once."""
    if not any(isinstance(existing, UpstreamLogNoteFilter) for existing in logger.filters):
        logger.addFilter(UpstreamLogNoteFilter())
