"""The paper's figures for the 13 configs (targets.md): sizes, #params, FLOPs and recipes."""
from collections import namedtuple

Target = namedtuple('Target', 'arch pretrain input_size params_m gflops drop_path lr decay_rate '
                              'num_layers amp')
# (W, H) of the published FLOPs; for ADE20K, H is also the training crop.
COCO_SIZE, ADE_512, ADE_640 = (1280, 800), (2048, 512), (2560, 640)
# Paper Table 3 and the authors' recipes (layer_wise decay).
COCO_TARGETS = {
    'mask_rcnn_convnext_t': Target('tiny', '1k', COCO_SIZE, 48, 262, 0.4, 1e-4, 0.95, 6, True),
    'cascade_convnext_t': Target('tiny', '1k', COCO_SIZE, 86, 741, 0.4, 2e-4, 0.7, 6, True),
    'cascade_convnext_s': Target('small', '1k', COCO_SIZE, 108, 827, 0.6, 2e-4, 0.7, 12, True),
    'cascade_convnext_b': Target('base', '1k', COCO_SIZE, 146, 964, 0.7, 2e-4, 0.8, 12, True),
    'cascade_convnext_b_22k': Target('base', '22k', COCO_SIZE, 146, 964, 0.6, 1e-4, 0.8, 12, True),
    'cascade_convnext_l_22k':
        Target('large', '22k', COCO_SIZE, 255, 1354, 0.7, 1e-4, 0.7, 12, False),
    'cascade_convnext_xl_22k':
        Target('xlarge', '22k', COCO_SIZE, 407, 1898, 0.8, 1e-4, 0.7, 12, False),
}
# Paper Table 4 and the authors' recipes (stage_wise decay).
ADE_TARGETS = {
    'upernet_convnext_t': Target('tiny', '1k', ADE_512, 60, 939, 0.4, 1e-4, 0.9, 6, True),
    'upernet_convnext_s': Target('small', '1k', ADE_512, 82, 1027, 0.3, 1e-4, 0.9, 12, True),
    'upernet_convnext_b': Target('base', '1k', ADE_512, 122, 1170, 0.4, 1e-4, 0.9, 12, True),
    'upernet_convnext_b_22k_640':
        Target('base', '22k', ADE_640, 122, 1828, 0.4, 1e-4, 0.9, 12, True),
    'upernet_convnext_l_22k_640':
        Target('large', '22k', ADE_640, 235, 2458, 0.4, 1e-4, 0.9, 12, False),
    'upernet_convnext_xl_22k_640':
        Target('xlarge', '22k', ADE_640, 391, 3335, 0.4, 8e-5, 0.9, 12, False),
}
TARGETS = {**COCO_TARGETS, **ADE_TARGETS}
