"""mmconvnext's registries: children of mmengine's roots under the scope ``mmconvnext``.

``locations`` lets mmengine import the registering modules on demand, so that
``type='mmconvnext.ConvNeXt'`` builds from a config whose default scope is ``mmdet`` or
``mmseg`` without ``import mmconvnext`` first: mmengine imports ``mmconvnext.registry`` for the
scope, then the location for the key. ``mmconvnext.models.segmentors`` (mmseg's test-time
augmentation, which imports ``mmseg.models``) is imported only there, on the first build of an
``mmconvnext.`` model, so that ``import mmconvnext`` stays light.
"""
from importlib import import_module

from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import Registry

MODELS = Registry('model', parent=MMENGINE_MODELS, scope='mmconvnext',
                  locations=['mmconvnext.models', 'mmconvnext.models.segmentors'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor', parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
    scope='mmconvnext', locations=['mmconvnext.engine.optimizers'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope='mmconvnext',
                 locations=['mmconvnext.engine.hooks'])
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, scope='mmconvnext',
                 locations=['mmconvnext.engine.resumable_loops'])
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, scope='mmconvnext',
                    locations=['mmconvnext.datasets'])
METRICS = Registry('metric', parent=MMENGINE_METRICS, scope='mmconvnext',
                   locations=['mmconvnext.evaluation'])

DOWNSTREAM_SCOPES = ('mmdet', 'mmseg')


def register_downstream(cls, registry_name='MODELS'):
    """Also register ``cls`` under its bare name in mmdet's and mmseg's registry of that name.

    So ``type='ConvNeXt'`` works in either package's configs, as in the official repository.
    Packages that are not installed are skipped. Returns ``cls`` (usable as a decorator).
    """
    for scope in DOWNSTREAM_SCOPES:
        try:
            registry = getattr(import_module(f'{scope}.registry'), registry_name)
        except ImportError:
            continue
        # module_dict, not get(): get() would import all of mmdet.models / mmseg.models.
        if registry.module_dict.get(cls.__name__) is not cls:
            registry.register_module(module=cls, force=True)
    return cls
