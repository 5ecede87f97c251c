"""ConvNeXt for OpenMMLab 3.x: importing the package registers every component.

Registries: :mod:`mmconvnext.registry` (scope ``mmconvnext``). Importing also allow-lists the
globals of mmengine runner checkpoints for ``torch.load(weights_only=True)``
(:mod:`mmconvnext.utils.safe_checkpoint_globals`).
"""
from .utils import allow_mmengine_checkpoint_globals
from .version import __version__

allow_mmengine_checkpoint_globals()

from . import engine, evaluation, models  # noqa: E402,F401  (registers components)

__all__ = ['__version__']
