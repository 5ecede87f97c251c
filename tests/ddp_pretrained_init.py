"""Run by torchrun on 2 gloo processes (``test_checkpoint_formats``): a ConvNeXt with a
``Pretrained`` ``init_cfg``, built, wrapped and initialised in the order of mmengine's Runner
(DDP wrapping first, which broadcasts rank 0's random weights; ``init_weights`` on every rank in
``runner.train()``), then saves what this rank's backbone holds.

    python -m torch.distributed.run --nproc_per_node=2 ddp_pretrained_init.py CHECKPOINT OUT_DIR
"""
import sys

import torch
import torch.distributed as dist
from mmengine.model import MMDistributedDataParallel

from mmconvnext.models import ConvNeXt

#: The test checkpoint's arch.
ARCH = dict(depths=[1, 1, 2, 1], channels=[8, 16, 32, 64])


def main(checkpoint, out_dir):
    dist.init_process_group('gloo')
    rank = dist.get_rank()
    torch.manual_seed(rank)  # each rank starts from other random weights
    model = ConvNeXt(ARCH, init_cfg=dict(type='Pretrained', checkpoint=checkpoint))
    wrapped = MMDistributedDataParallel(model)
    wrapped.module.init_weights()
    torch.save(model.state_dict(), f'{out_dir}/rank{rank}.pth')
    dist.barrier()
    dist.destroy_process_group()


if __name__ == '__main__':
    main(*sys.argv[1:])
