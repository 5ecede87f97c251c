"""ConvNeXt for OpenMMLab 3.x: importing the package registers every component.

Registries: :mod:`mmconvnext.registry` (scope ``mmconvnext``). Importing also allow-lists the
globals of mmengine runner checkpoints for ``torch.load(weights_only=True)``
(:mod:`mmconvnext.utils.safe_checkpoint_globals`) and filters the upstream packages' warnings
about their own deprecated code (:mod:`mmconvnext.utils.upstream_warnings`), before any config
is read.
"""
from .utils import allow_mmengine_checkpoint_globals, ignore_upstream_deprecations
from .version import __version__

ignore_upstream_deprecations()
allow_mmengine_checkpoint_globals()

from . import engine, evaluation, models  # noqa: E402,F401  (registers components)

__all__ = ['__version__']
