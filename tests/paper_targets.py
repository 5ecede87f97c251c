"""The papers' figures for the configs: sizes, #params, FLOPs and recipes of the 13 ConvNeXt
configs (targets.md) and of the 7 ConvNeXt V2 configs (V2 paper Tables 6 and 7, appendix A.3 /
A.4; the values it only sweeps are our choices, stated in each config)."""
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

V2Target = namedtuple('V2Target', Target._fields + ('checkpoint', ))
V2Target.__doc__ = """A V2 config's target; ``params_m`` None where the paper gives none (COCO);
``checkpoint``: the official file under ``convnext/convnextv2/``."""
# V2 paper Table 6 (FLOPs at 1280x800) and appendix A.3 (lr; decay and drop path from its sweeps).
V2_COCO_TARGETS = {
    'mask_rcnn_convnextv2_b': V2Target('base', '1k', COCO_SIZE, None, 486, 0.5, 1e-4, 0.9, 12,
                                       True, 'im1k/convnextv2_base_1k_224_ema.pt'),
    'mask_rcnn_convnextv2_l': V2Target('large', '1k', COCO_SIZE, None, 875, 0.5, 1e-4, 0.9, 12,
                                       False, 'im1k/convnextv2_large_1k_224_ema.pt'),
    'mask_rcnn_convnextv2_h': V2Target('huge', '1k', COCO_SIZE, None, 2525, 0.5, 1e-4, 0.9, 12,
                                       False, 'im1k/convnextv2_huge_1k_224_ema.pt'),
}
# V2 paper Table 7 and appendix A.4 (lr, decay and drop path from its sweeps).
V2_ADE_TARGETS = {
    'upernet_convnextv2_b': V2Target('base', '1k', ADE_512, 122, 1170, 0.4, 1e-4, 0.9, 12, True,
                                     'im1k/convnextv2_base_1k_224_ema.pt'),
    'upernet_convnextv2_l': V2Target('large', '1k', ADE_512, 235, 1573, 0.4, 1e-4, 0.9, 12, False,
                                     'im1k/convnextv2_large_1k_224_ema.pt'),
    'upernet_convnextv2_h': V2Target('huge', '1k', ADE_512, 707, 3272, 0.4, 1e-4, 0.9, 12, False,
                                     'im1k/convnextv2_huge_1k_224_ema.pt'),
    'upernet_convnextv2_h_22k_640': V2Target('huge', '22k', ADE_640, 707, 5113, 0.4, 1e-4, 0.9, 12,
                                             False, 'im22k/convnextv2_huge_22k_384_ema.pt'),
}
V2_TARGETS = {**V2_COCO_TARGETS, **V2_ADE_TARGETS}
