"""Checkpoint formats: every published layout converts to ours and computes the same features.

Fixtures are written here from each library's own randomly initialised model (never downloaded);
vector parameters (biases, norms, layer scale, GRN) are randomised too, as they start constant.
Inputs are 64x64, so the stride-32 output is 2x2.
"""
import argparse
import os
import pickle
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from tiny_runs import TIMEOUT_S, free_port, randomise, tool_env

from mmconvnext.models import ConvNeXt
from mmconvnext.models.backbones.checkpoint_formats import (convert_state_dict,
                                                            fcmae_kernel_to_conv, load_pretrained,
                                                            read_checkpoint)

REPO = Path(__file__).resolve().parents[1]
V2 = dict(use_grn=True, layer_scale_init_value=0.)
SMALL_ARCH = dict(depths=[1, 1, 2, 1], channels=[8, 16, 32, 64])


def fresh_norm(x):
    """A new channels-first LayerNorm (weight 1, bias 0, eps 1e-6), as our unloaded norm{i}."""
    return F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], eps=1e-6).permute(0, 3, 1, 2)


def assert_same_features(outs, refs, tolerance=1e-4):
    assert len(outs) == len(refs) == 4
    for i, (out, ref) in enumerate(zip(outs, refs)):
        assert out.shape == ref.shape, i
        error = ((out - ref).abs().max() / ref.abs().max()).item()
        assert error <= tolerance, f'output {i}: max relative error {error:.2e}'


def loaded_model(checkpoint, prefix=None, **kwargs):
    model = ConvNeXt(**kwargs)
    load_pretrained(model, str(checkpoint), prefix=prefix)
    return model.eval()


def features(model, x):
    with torch.no_grad():
        return model(x)


def save(obj, path):
    torch.save(obj, path)
    return path


# --- timm and official classification checkpoints ------------------------------------------------

TIMM_CASES = [  # (timm name, our kwargs, classes of the head: ImageNet-1K or the 22K 21841)
    pytest.param('convnext_tiny', dict(arch='tiny'), 1000, id='tiny'),
    pytest.param('convnext_small', dict(arch='small'), 1000, id='small'),
    pytest.param('convnext_base', dict(arch='base'), 1000, id='base'),
    pytest.param('convnext_large', dict(arch='large'), 1000, id='large', marks=pytest.mark.slow),
    pytest.param('convnext_xlarge', dict(arch='xlarge'), 21841, id='xlarge-22k',
                 marks=pytest.mark.slow),
    pytest.param('convnextv2_atto', dict(arch='atto', **V2), 21841, id='v2-atto-22k'),
    pytest.param('convnextv2_tiny', dict(arch='tiny', **V2), 1000, id='v2-tiny'),
]


def random_timm_model(name, num_classes=1000):
    """A timm model with random weights, built on the meta device to skip timm's slow init."""
    timm = pytest.importorskip('timm')
    with torch.device('meta'):
        model = timm.create_model(name, pretrained=False, num_classes=num_classes)
    assert not list(model.buffers())  # to_empty leaves nothing uninitialised after randomise
    return randomise(model.to_empty(device='cpu'))


def timm_to_official(timm_state_dict):
    """The official classification layout, renamed independently of the code under test."""
    block_names = [('conv_dw.', 'dwconv.'), ('mlp.fc1.', 'pwconv1.'), ('mlp.fc2.', 'pwconv2.'),
                   ('mlp.grn.weight', 'grn.gamma'), ('mlp.grn.bias', 'grn.beta')]
    official = {}
    for key, value in timm_state_dict.items():
        parts = key.split('.')
        if parts[0] == 'stem':
            key = '.'.join(['downsample_layers', '0'] + parts[1:])
        elif parts[0] == 'head':
            key = {'norm': 'norm', 'fc': 'head'}[parts[1]] + '.' + parts[2]
        elif parts[2] == 'downsample':
            key = '.'.join(['downsample_layers', parts[1]] + parts[3:])
        else:  # stages.i.blocks.j.<leaf>
            leaf = '.'.join(parts[4:])
            for timm_name, official_name in block_names:
                leaf = leaf.replace(timm_name, official_name)
            key = f'stages.{parts[1]}.{parts[3]}.{leaf}'
            if leaf.startswith('grn.'):
                value = value.reshape(1, 1, 1, -1)  # the official V2 GRN shape
            elif leaf.startswith('pwconv') and value.dim() == 4:
                value = value[:, :, 0, 0]  # timm's conv_mlp 1x1 convs are Linear layers there
        official[key] = value
    return official


@pytest.mark.parametrize('name, kwargs, num_classes', TIMM_CASES)
def test_timm_and_official_checkpoints_match_timm(name, kwargs, num_classes, tmp_path):
    reference = random_timm_model(name, num_classes)
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        refs = [fresh_norm(f) for f in reference.forward_intermediates(x, intermediates_only=True)]
    timm_state_dict = reference.state_dict()
    official = {'model': timm_to_official(timm_state_dict)}
    assert official['model']['head.weight'].shape[0] == num_classes
    model = ConvNeXt(**kwargs).eval()  # built once: big models are slow to initialise
    for fmt, checkpoint in [('timm', timm_state_dict), ('official classification', official)]:
        assert convert_state_dict(checkpoint)[1] == fmt
        with torch.no_grad():  # all but the fresh output norms must come from the checkpoint
            for name, param in model.named_parameters():
                if not name.startswith('norm'):
                    param.zero_()
        load_pretrained(model, str(save(checkpoint, tmp_path / f'{fmt}.pth')))
        assert_same_features(features(model, x), refs)


@pytest.fixture(scope='module')
def timm_atto(tmp_path_factory):
    """timm's ConvNeXt-atto (its 1x1 convs are Conv2d: conv_mlp): (checkpoint path, x, refs)."""
    model = random_timm_model('convnext_atto')
    assert model.state_dict()['stages.0.blocks.0.mlp.fc1.weight'].dim() == 4
    torch.manual_seed(0)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        refs = [fresh_norm(f) for f in model.forward_intermediates(x, intermediates_only=True)]
    path = save(model.state_dict(), tmp_path_factory.mktemp('timm') / 'convnext_atto.pth')
    return path, x, refs


def test_init_cfg_pretrained_loads_and_reports(timm_atto, log_lines):
    path, x, refs = timm_atto
    model = ConvNeXt('atto', init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    assert_same_features(features(model.eval(), x), refs)
    report = log_lines()
    assert f'from {path} (timm format)' in report
    assert 'newly initialised: norm0 (2), norm1 (2), norm2 (2), norm3 (2)' in report
    assert 'ignored from the checkpoint: head (4)' in report


def test_safetensors_and_url_checkpoints(timm_atto, tmp_path, monkeypatch):
    safetensors = pytest.importorskip('safetensors.torch')
    path, x, refs = timm_atto
    safetensors_path = tmp_path / 'model.safetensors'
    safetensors.save_file(torch.load(path, weights_only=True), safetensors_path)
    assert_same_features(features(loaded_model(safetensors_path, arch='atto'), x), refs)

    downloads = []
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path / 'hub'))
    monkeypatch.setattr(torch.hub, 'download_url_to_file',
                        lambda url, dst, *args, **kwargs: downloads.append(url) or
                        Path(dst).write_bytes(path.read_bytes()))
    url = 'https://example.com/weights/convnext_atto.pth?raw=1'
    for _ in range(2):  # downloaded once, then read from the cache
        assert_same_features(features(loaded_model(url, arch='atto'), x), refs)
    assert downloads == [url]
    assert (tmp_path / 'hub' / 'checkpoints' / 'convnext_atto.pth').is_file()


# --- mmpretrain / mmdet / mmseg zoos and official dense-prediction checkpoints ------------------


@pytest.mark.parametrize('kwargs, pointwise', [
    (dict(arch='tiny'), dict()),
    (dict(arch='atto', **V2), dict(linear_pw_conv=False)),  # 1x1 convs: (O, I, 1, 1) weights
], ids=['tiny', 'v2-atto-conv-pointwise'])
def test_mmdet_zoo_checkpoint_matches_mmpretrain(kwargs, pointwise, tmp_path, log_lines):
    from mmpretrain.models.backbones import ConvNeXt as MMPretrainConvNeXt
    reference = randomise(MMPretrainConvNeXt(**kwargs, **pointwise, out_indices=(0, 1, 2, 3),
                                             gap_before_final_norm=False))
    state_dict = {f'backbone.{k}': v for k, v in reference.state_dict().items()}
    state_dict['neck.lateral_convs.0.conv.weight'] = torch.randn(256, 96, 1, 1)
    state_dict['rpn_head.rpn_conv.bias'] = torch.randn(256)
    checkpoint = {'meta': {'epoch': 36, 'mmdet_version': '3.3.0'}, 'state_dict': state_dict}
    assert convert_state_dict(checkpoint)[1] == 'mmpretrain'
    model = loaded_model(save(checkpoint, tmp_path / 'mask_rcnn.pth'), **kwargs)
    torch.manual_seed(0)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert_same_features(features(model, x), reference(x))  # trained norm{i} loaded
    assert 'newly initialised' not in log_lines()
    assert 'ignored from the checkpoint: neck (1), rpn_head (1)' in log_lines()


def test_official_dense_prediction_checkpoint_keeps_output_norms(tmp_path):
    torch.manual_seed(0)
    source = randomise(ConvNeXt(SMALL_ARCH))
    checkpoint = {'meta': {'iter': 160000}, 'state_dict': {
        **{f'backbone.{k}': v for k, v in source.state_dict().items()},
        'decode_head.conv_seg.weight': torch.randn(150, 512, 1, 1)}}
    assert convert_state_dict(checkpoint)[1] == 'official dense-prediction'
    model = loaded_model(save(checkpoint, tmp_path / 'upernet.pth'), arch=SMALL_ARCH)
    x = torch.randn(1, 3, 64, 64)
    for out, ref in zip(features(model, x), features(source, x)):
        assert torch.equal(out, ref)


# --- torchvision and HuggingFace -----------------------------------------------------------------


def test_torchvision_checkpoint_matches_torchvision_features(tmp_path):
    from torchvision.models import convnext_tiny
    torch.manual_seed(0)
    reference = randomise(convnext_tiny(weights=None))
    x = torch.randn(1, 3, 64, 64)
    refs = []
    with torch.no_grad():
        y = x
        for i, layer in enumerate(reference.features):
            y = layer(y)
            if i % 2:  # features 1, 3, 5, 7 are the stages
                refs.append(fresh_norm(y))
    path = save(reference.state_dict(), tmp_path / 'convnext_tiny.pth')
    assert convert_state_dict(reference.state_dict())[1] == 'torchvision'
    assert_same_features(features(loaded_model(path, arch='tiny'), x), refs)


HF_CASES = [  # (model class, config class, our kwargs); atto sizes keep these quick
    ('ConvNextModel', 'ConvNextConfig', dict(arch='atto')),
    ('ConvNextForImageClassification', 'ConvNextConfig', dict(arch='atto')),
    ('ConvNextV2Model', 'ConvNextV2Config', dict(arch='atto', **V2)),
    ('ConvNextV2ForImageClassification', 'ConvNextV2Config', dict(arch='atto', **V2)),
    ('ConvNextBackbone', 'ConvNextConfig', dict(arch='atto')),
    ('ConvNextV2Backbone', 'ConvNextV2Config', dict(arch='atto', **V2)),
]


@pytest.mark.parametrize('class_name, config_name, kwargs', HF_CASES,
                         ids=[case[0] for case in HF_CASES])
def test_huggingface_checkpoint_matches_transformers(class_name, config_name, kwargs, tmp_path):
    transformers = pytest.importorskip('transformers')
    config = getattr(transformers, config_name)(
        depths=[2, 2, 6, 2], hidden_sizes=[40, 80, 160, 320],
        out_features=['stage1', 'stage2', 'stage3', 'stage4'])
    reference = randomise(getattr(transformers, class_name)(config))
    torch.manual_seed(0)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        if class_name.endswith('Backbone'):  # its own trained hidden_states_norms
            refs = reference(x).feature_maps
        else:
            encoder = getattr(reference, 'convnext', getattr(reference, 'convnextv2', reference))
            refs = [fresh_norm(h) for h in encoder(x, output_hidden_states=True).hidden_states[1:]]
    path = save(reference.state_dict(), tmp_path / 'pytorch_model.bin')
    assert convert_state_dict(reference.state_dict())[1] == 'huggingface'
    assert_same_features(features(loaded_model(path, **kwargs), x), refs)


# --- DINOv3 ConvNeXt: its repository's files, transformers' DINOv3ConvNextModel, timm -------------


def official_to_dinov3_transformers(official):
    """transformers' ``DINOv3ConvNextModel`` names, as its ``convert_dinov3_convnext_to_hf.py`` maps
    the DINOv3 repository's keys (``norms.3``, an alias of ``norm``, is not saved)."""
    renamed = {}
    for key, value in official.items():
        if key.startswith('norms.'):
            continue
        parts = key.split('.')
        if parts[0] == 'stages':  # stages.i.j.<leaf> -> stages.i.layers.j.<leaf>
            parts[2:2] = ['layers']
        elif parts[0] == 'downsample_layers':  # -> stages.i.downsample_layers.k
            parts = ['stages', parts[1], 'downsample_layers'] + parts[2:]
        key = '.'.join(parts).replace('dwconv', 'depthwise_conv').replace(
            'pwconv', 'pointwise_conv').replace('norm.', 'layer_norm.')
        renamed[key] = value
    return renamed


@pytest.fixture(scope='module')
def dinov3_source():
    """timm's ``convnext_tiny.dinov3_lvd1689m`` (headless), random weights: its
    state dict, the DINOv3 repository's and transformers' layouts of it, x, and DINOv3's dense
    features: stages 0-2 unnormalised (fresh norms on our side), stage 3 through the final norm."""
    reference = random_timm_model('convnext_tiny.dinov3_lvd1689m', num_classes=0)
    torch.manual_seed(0)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        stages = reference.forward_intermediates(x, intermediates_only=True)
        refs = [fresh_norm(f) for f in stages[:3]] + [reference.head.norm(stages[3])]
    timm_state_dict = reference.state_dict()
    assert 'head.fc.weight' not in timm_state_dict
    official = timm_to_official(timm_state_dict)
    official.update({'norms.3.weight': official['norm.weight'],
                     'norms.3.bias': official['norm.bias']})
    transformers = official_to_dinov3_transformers(official)
    # transformers 5 keeps the stages under ``model.`` in memory (its files keep the names above)
    transformers_5 = {('' if key.startswith('layer_norm.') else 'model.') + key: value
                      for key, value in transformers.items()}
    return dict(timm=timm_state_dict, repository=official, transformers=transformers,
                transformers_5=transformers_5, x=x, refs=refs)


@pytest.mark.parametrize('layout, fmt, ignored', [
    ('repository', 'DINOv3', 'norms.3 (2)'),
    ('transformers', 'DINOv3 transformers', None),
    ('transformers_5', 'DINOv3 transformers', None),
    ('timm', 'DINOv3 timm', None),
])
def test_dinov3_checkpoints_load_with_the_final_norm_as_norm3(
        dinov3_source, layout, fmt, ignored, tmp_path, log_lines):
    state_dict = dinov3_source[layout]
    assert convert_state_dict(state_dict)[1] == fmt
    path = save(state_dict, tmp_path / 'dinov3_convnext_tiny_pretrain_lvd1689m.pth')
    model = loaded_model(path, arch='tiny')
    assert_same_features(features(model, dinov3_source['x']), dinov3_source['refs'])
    report = log_lines()
    assert f'({fmt} format)' in report
    assert 'newly initialised: norm0 (2), norm1 (2), norm2 (2)\n' in report + '\n'
    assert ('ignored from the checkpoint' in report) == (ignored is not None)
    if ignored:
        assert f'ignored from the checkpoint: {ignored}' in report


def test_dinov3_file_of_another_size_is_refused_naming_both_archs(dinov3_source, tmp_path):
    path = save(dinov3_source['repository'], tmp_path / 'dinov3_convnext_tiny.pth')
    with pytest.raises(ValueError, match=r'stages\.2\.9\..* of the model is not in it.*looks '
                       r'like ConvNeXt tiny.*the model is ConvNeXt small'):
        loaded_model(path, arch='small')


def test_dinov3_is_told_apart_from_official_and_timm_classifiers(dinov3_source):
    """The final norm of a classifier normalises pooled features: dropped there, not norm3."""
    classifier = {k: v for k, v in dinov3_source['repository'].items() if not k.startswith('norms')}
    classifier['head.weight'] = torch.zeros(10, 768)
    converted, fmt = convert_state_dict(classifier)
    assert fmt == 'official classification' and 'norm3.weight' not in converted
    timm_classifier = {**dinov3_source['timm'], 'head.fc.weight': torch.zeros(10, 768)}
    converted, fmt = convert_state_dict(timm_classifier)
    assert fmt == 'timm' and 'norm3.weight' not in converted


def test_dinov3_checkpoint_reaches_every_rank_of_2_gloo_processes(tmp_path):
    """dinov3#112: weights loaded outside ``init_cfg`` were overwritten on ranks other than 0.
    Here each rank starts from other random weights and loads the file itself after DDP
    wrapping, as mmengine's Runner orders it (``ddp_pretrained_init.py``)."""
    official = randomise(ConvNeXt(SMALL_ARCH)).state_dict()
    repository = {k: v for k, v in official.items() if not k.startswith('norm')}
    for name in ('norm', 'norms.3'):
        repository.update({f'{name}.weight': official['norm3.weight'],
                           f'{name}.bias': official['norm3.bias']})
    checkpoint = save(repository, tmp_path / 'dinov3_convnext.pth')
    run = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
         f'--master_port={free_port()}', str(REPO / 'tests' / 'ddp_pretrained_init.py'),
         str(checkpoint), str(tmp_path)],
        env=tool_env(OMP_NUM_THREADS='1'), capture_output=True, text=True, timeout=TIMEOUT_S)
    assert run.returncode == 0, run.stderr[-3000:]
    assert '(DINOv3 format)' in run.stdout  # the load report (mmengine logs rank 0's)
    for rank in (0, 1):
        held = torch.load(tmp_path / f'rank{rank}.pth', weights_only=True)
        for key, value in held.items():
            if key.startswith(('norm0', 'norm1', 'norm2')):
                expected = torch.ones_like(value) if key.endswith('weight') else torch.zeros_like(
                    value)  # fresh: DINOv3 reads these stages unnormalised
            else:
                expected = official[key]
            assert torch.equal(value, expected), (rank, key)


# --- ConvNeXt V2 FCMAE pre-training checkpoints ----------------------------------------------


def official_remap_inverse(weight):
    """Inverse of the official ``remap_checkpoint_keys`` kernel reshape (ConvNeXt-V2 utils.py):
    it maps a (k*k, I, O) kernel v to ``v.permute(2, 1, 0).reshape(O, I, k, k).transpose(3, 2)``
    and a (k*k, C) one to ``v.permute(1, 0).reshape(C, 1, k, k).transpose(3, 2)``."""
    out_dim, in_dim, size, _ = weight.shape
    if in_dim == 1:  # depthwise
        return weight.transpose(3, 2).reshape(out_dim, size * size).permute(1, 0)
    return weight.transpose(3, 2).reshape(out_dim, in_dim, size * size).permute(2, 1, 0)


def fcmae_state_dict(dense, decoder_dim=512, patch_size=32):
    """The state dict of the official FCMAE model (models/fcmae.py) whose encoder holds
    ``dense``'s weights: sparse layers under ``encoder.`` (``.kernel``, ``.ln.``, ``.linear.``,
    (1, C) biases and GRN), then the decoder, mask token and prediction head it saves."""
    encoder = {}
    for key, value in dense.state_dict().items():
        parts = key.split('.')
        if parts[0].startswith('norm'):
            continue  # the encoder has no output norms
        sparse_conv = (parts[0] == 'downsample_layers' and parts[1] != '0' and parts[2] == '1'
                       or parts[-2] == 'dwconv')
        if sparse_conv and parts[-1] == 'weight':
            key, value = key[:-len('weight')] + 'kernel', official_remap_inverse(value)
        elif sparse_conv or parts[-2] == 'grn':
            value = value.reshape(1, -1)
        elif parts[0] == 'downsample_layers' and parts[1] != '0' and parts[2] == '0':
            key = '.'.join(parts[:3] + ['ln'] + parts[3:])
        elif parts[-2] == 'norm':
            key = '.'.join(parts[:-1] + ['ln', parts[-1]])
        elif parts[-2] in ('pwconv1', 'pwconv2'):
            key = '.'.join(parts[:-1] + ['linear', parts[-1]])
        encoder['encoder.' + key] = value
    hidden = 4 * decoder_dim
    decoder = {
        'proj.weight': torch.randn(decoder_dim, dense.channels[-1], 1, 1),
        'proj.bias': torch.randn(decoder_dim), 'mask_token': torch.randn(1, decoder_dim, 1, 1),
        'decoder.0.dwconv.weight': torch.randn(decoder_dim, 1, 7, 7),
        'decoder.0.dwconv.bias': torch.randn(decoder_dim),
        'decoder.0.norm.weight': torch.randn(decoder_dim),
        'decoder.0.norm.bias': torch.randn(decoder_dim),
        'decoder.0.pwconv1.weight': torch.randn(hidden, decoder_dim),
        'decoder.0.pwconv1.bias': torch.randn(hidden),
        'decoder.0.grn.gamma': torch.randn(1, 1, 1, hidden),
        'decoder.0.grn.beta': torch.randn(1, 1, 1, hidden),
        'decoder.0.pwconv2.weight': torch.randn(decoder_dim, hidden),
        'decoder.0.pwconv2.bias': torch.randn(decoder_dim),
        'pred.weight': torch.randn(patch_size ** 2 * 3, decoder_dim, 1, 1),
        'pred.bias': torch.randn(patch_size ** 2 * 3)}
    return {**encoder, **decoder}


@pytest.fixture(scope='module')
def fcmae_source():
    """A random dense V2 model with fresh output norms (FCMAE files have none)."""
    model = randomise(ConvNeXt(SMALL_ARCH, **V2), seed=3)
    with torch.no_grad():
        for i in range(4):
            getattr(model, f'norm{i}').reset_parameters()
    return model


def test_fcmae_kernels_follow_the_official_orientation():
    """Kernel row w * k + h is position (h, w), as the official transpose(3, 2) makes it."""
    depthwise = torch.zeros(49, 2)
    depthwise[1, 1] = 1.  # w = 0, h = 1
    weight = fcmae_kernel_to_conv('dwconv.kernel', depthwise)
    assert weight.shape == (2, 1, 7, 7) and weight[1, 0, 1, 0] == 1 and weight.sum() == 1
    dense = torch.zeros(4, 3, 5)
    dense[2, 1, 4] = 1.  # w = 1, h = 0
    weight = fcmae_kernel_to_conv('downsample.kernel', dense)
    assert weight.shape == (5, 3, 2, 2) and weight[4, 1, 0, 1] == 1 and weight.sum() == 1


def test_fcmae_checkpoint_loads_the_encoder_and_drops_the_decoder(
        fcmae_source, tmp_path, log_lines):
    torch.manual_seed(0)
    checkpoint = {'model': fcmae_state_dict(fcmae_source)}
    assert convert_state_dict(checkpoint)[1] == 'fcmae'
    path = save(checkpoint, tmp_path / 'convnextv2_atto_1k_224_fcmae.pt')
    model = ConvNeXt(SMALL_ARCH, **V2, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    x = torch.randn(1, 3, 64, 64)
    for out, ref in zip(features(model.eval(), x), features(fcmae_source, x), strict=True):
        assert torch.equal(out, ref)
    report = log_lines()
    assert f'from {path} (fcmae format)' in report
    assert 'newly initialised: norm0 (2), norm1 (2), norm2 (2), norm3 (2)' in report
    assert 'ignored from the checkpoint: proj (2), mask_token (1), decoder.0 (10), pred (2)' in (
        report)

    dst = tmp_path / 'converted.pth'
    stdout = convert_tool(path, dst)
    assert 'from a fcmae checkpoint' in stdout
    assert 'dropped: proj (2), mask_token (1), decoder.0 (10), pred (2)' in stdout
    for out, ref in zip(features(loaded_model(dst, arch=SMALL_ARCH, **V2), x),
                        features(fcmae_source, x), strict=True):
        assert torch.equal(out, ref)


@pytest.mark.parametrize('key, tensor, problem', [
    ('encoder.stages.1.0.dwconv.kernel', torch.zeros(48, 16),
     'FCMAE kernel encoder.stages.1.0.dwconv.kernel has shape (48, 16)'),
    ('encoder.downsample_layers.2.1.kernel', torch.zeros(4, 16, 32, 1), 'has shape (4, 16, 32, 1)'),
    ('encoder.stages.0.0.dwconv.kernel', torch.zeros(49, 9),
     'shape mismatch at stages.0.0.dwconv.weight: checkpoint (9, 1, 7, 7), model (8, 1, 7, 7)'),
    ('encoder.stages.0.0.extra.weight', torch.zeros(8),
     'encoder.stages.0.0.extra.weight of the fcmae checkpoint is neither a ConvNeXt tensor'),
    ('teacher.stages.0.0.dwconv.weight', torch.zeros(8, 1, 7, 7),
     'nor under the modules dropped (proj, mask_token, decoder, pred)'),
])
def test_fcmae_bad_tensors_are_named(fcmae_source, key, tensor, problem, tmp_path):
    state_dict = fcmae_state_dict(fcmae_source, decoder_dim=8, patch_size=2)
    state_dict[key] = tensor
    path = save({'model': state_dict}, tmp_path / 'fcmae.pt')
    with pytest.raises(ValueError) as error:
        loaded_model(path, arch=SMALL_ARCH, **V2)
    assert str(path) in str(error.value) and problem in str(error.value)


# --- prefixes, partial models --------------------------------------------------------------------


@pytest.fixture(scope='module')
def two_models():
    return randomise(ConvNeXt(SMALL_ARCH), seed=1), randomise(ConvNeXt(SMALL_ARCH), seed=2)


def prefixed(model, prefix):
    return {prefix + key: value for key, value in model.state_dict().items()}


@pytest.mark.parametrize('prefix, keys, expected', [
    (None, ['backbone.', 'ema.'], 0),  # backbone. is stripped automatically
    ('backbone', ['backbone.', 'ema.'], 0),
    ('ema', ['backbone.', 'ema.'], 1),  # mmengine semantics: the '.' is implied
    ('ema.', ['backbone.', 'ema.'], 1),
    (None, ['module.backbone.', 'module.neck.'], 0),  # DDP wrapper, then the detector
    (None, ['', 'teacher.'], 0),  # no known prefix: keys taken as they are
])
def test_prefix_semantics(two_models, prefix, keys, expected, tmp_path):
    checkpoint = {'state_dict': {**prefixed(two_models[0], keys[0]),
                                 **prefixed(two_models[1], keys[1])}}
    model = loaded_model(save(checkpoint, tmp_path / 'checkpoint.pth'), prefix, arch=SMALL_ARCH)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, two_models[expected].state_dict()[name]), name


def test_partial_out_indices_ignore_unbuilt_stages(two_models, tmp_path, log_lines):
    path = save(two_models[0].state_dict(), tmp_path / 'checkpoint.pth')
    model = loaded_model(path, arch=SMALL_ARCH, out_indices=(0, 1))
    x = torch.randn(1, 3, 64, 64)
    for out, ref in zip(features(model, x), features(two_models[0], x)[:2], strict=True):
        assert torch.equal(out, ref)
    assert ('ignored from the checkpoint: downsample_layers.2 (4), downsample_layers.3 (4), '
            'stages.2 (18), stages.3 (9), norm2 (2), norm3 (2)') in log_lines()


# --- bad input -----------------------------------------------------------------------------------


class RunsShellCommand:
    """Unpickling this runs ``touch marker``, as a malicious checkpoint would run anything."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {shlex.quote(str(self.marker))}', )


def test_pickle_that_runs_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / 'code_ran'
    path = save({'state_dict': {'x': torch.zeros(1)}, 'hook': RunsShellCommand(marker)},
                tmp_path / 'evil.pth')
    for load in (read_checkpoint, lambda p: loaded_model(p, arch=SMALL_ARCH)):
        with pytest.raises(pickle.UnpicklingError) as error:
            load(str(path))
        message = str(error.value)
        assert str(path) in message and 'could execute code' in message
        assert 'system' in message  # torch's reason: the blocked global
        assert f'tools/convert_checkpoint.py {path}' in message and '--trust-pickle' in message
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the payload is real: the unsafe load does run it
    assert marker.exists()


def test_missing_truncated_and_non_checkpoint_files(tmp_path, two_models):
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        read_checkpoint(tmp_path / 'missing.pth')
    good = save(two_models[0].state_dict(), tmp_path / 'good.pth').read_bytes()
    (tmp_path / 'truncated.pth').write_bytes(good[:len(good) // 2])
    (tmp_path / 'notes.pth').write_text('not a checkpoint\n')
    (tmp_path / 'empty.pth').write_bytes(b'')
    save(torch.zeros(3), tmp_path / 'tensor.pth')
    save({'epoch': 3, 'meta': {'lr': 0.1}}, tmp_path / 'no_tensors.pth')
    for name, reason in [('truncated', 'is truncated or corrupt'),
                         ('notes', 'neither a PyTorch nor a safetensors file'),
                         ('empty', 'neither a PyTorch nor a safetensors file'),
                         ('tensor', 'holds a Tensor, not a checkpoint dict'),
                         ('no_tensors', 'holds no tensors')]:
        with pytest.raises(ValueError, match=reason) as error:
            read_checkpoint(tmp_path / f'{name}.pth')
        assert str(tmp_path / f'{name}.pth') in str(error.value)


def test_other_arch_is_refused_naming_key_shapes_and_arch(tmp_path):
    timm = pytest.importorskip('timm')
    with torch.device('meta'):
        base_shapes = {k: v.shape for k, v in timm.create_model('convnext_base').named_parameters()}
    # stride-0 tensors: a timm ConvNeXt-B checkpoint of a few KB
    base = {k: torch.zeros(1).expand(shape) for k, shape in base_shapes.items()}
    path = save(base, tmp_path / 'convnext_base.pth')
    model = ConvNeXt('tiny')
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError) as error:
        load_pretrained(model, str(path))
    message = str(error.value)
    assert str(path) in message and 'downsample_layers.0.0.weight' in message
    assert '(128, 3, 4, 4)' in message and '(96, 3, 4, 4)' in message
    assert 'looks like ConvNeXt base' in message and 'the model is ConvNeXt tiny (' in message
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # nothing loaded


@pytest.mark.parametrize('source_kwargs, model_kwargs, problem', [
    (dict(arch=dict(SMALL_ARCH, depths=[1, 1, 3, 1])), dict(arch=SMALL_ARCH),
     'it has stages.2.2.gamma (and 8 more), which the model lacks'),
    (dict(arch=SMALL_ARCH), dict(arch=dict(SMALL_ARCH, depths=[1, 1, 3, 1])),
     'stages.2.2.gamma (and 8 more) of the model is not in it'),
    (dict(arch=SMALL_ARCH), dict(arch=SMALL_ARCH, **V2),
     'stages.0.0.grn.gamma (and 9 more) of the model is not in it'),
    (dict(arch=SMALL_ARCH, **V2), dict(arch=SMALL_ARCH),
     'stages.0.0.gamma (and 4 more) of the model is not in it'),
])
def test_same_shapes_other_depth_or_version_is_refused(source_kwargs, model_kwargs, problem,
                                                       tmp_path):
    path = save(ConvNeXt(**source_kwargs).state_dict(), tmp_path / 'checkpoint.pth')
    with pytest.raises(ValueError, match='looks like ConvNeXt') as error:
        loaded_model(path, **model_kwargs)
    assert problem in str(error.value)


def test_unknown_format_and_wrong_prefix(tmp_path, two_models):
    path = save({'state_dict': {'encoder.layer1.0.conv1.weight': torch.zeros(64, 64, 3, 3)}},
                tmp_path / 'resnet.pth')
    with pytest.raises(ValueError, match='unrecognised ConvNeXt checkpoint format') as error:
        loaded_model(path, arch=SMALL_ARCH)
    assert str(path) in str(error.value) and 'encoder.layer1.0.conv1.weight' in str(error.value)

    path = save({'state_dict': prefixed(two_models[0], 'backbone.')}, tmp_path / 'det.pth')
    with pytest.raises(ValueError, match="no key starts with prefix 'teacher'") as error:
        loaded_model(path, prefix='teacher', arch=SMALL_ARCH)
    assert str(path) in str(error.value) and 'backbone.downsample_layers.0.0.weight' in str(
        error.value)


# --- tools/convert_checkpoint.py ---------------------------------------------------------------


def convert_tool(*args):
    result = subprocess.run([sys.executable, str(REPO / 'tools' / 'convert_checkpoint.py'),
                             *map(str, args)], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, 'PYTHONPATH': str(REPO)})
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_convert_tool_writes_a_clean_checkpoint(timm_atto, tmp_path):
    from mmengine.runner import load_checkpoint
    path, x, refs = timm_atto
    dst = tmp_path / 'out' / 'convnext_atto_mmconvnext.pth'
    assert 'backbone tensors from a timm checkpoint' in convert_tool(path, dst)
    converted = torch.load(dst, weights_only=True)
    assert converted['meta'] == {'source_format': 'timm', 'source': str(path)}
    assert not any(k.startswith('head') for k in converted['state_dict'])
    direct = features(loaded_model(path, arch='atto'), x)
    assert_same_features(direct, refs)
    via_mmengine = ConvNeXt('atto')
    load_checkpoint(via_mmengine, str(dst), strict=False)  # norm{i} keep their init
    for model in (loaded_model(dst, arch='atto'), via_mmengine.eval()):
        for out, ref in zip(features(model, x), direct, strict=True):
            assert torch.equal(out, ref)


def test_convert_tool_trust_pickle_is_the_only_unsafe_path(two_models, tmp_path):
    # e.g. a training checkpoint that also saved its argparse arguments
    path = save({'model': two_models[0].state_dict(), 'args': argparse.Namespace(lr=4e-3)},
                tmp_path / 'trained.pth')
    with pytest.raises(pickle.UnpicklingError, match='could execute code'):
        read_checkpoint(path)
    dst = tmp_path / 'converted.pth'
    assert 'weights_only=False' in convert_tool(path, dst, '--trust-pickle')
    model = loaded_model(dst, arch=SMALL_ARCH)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, two_models[0].state_dict()[name]), name
