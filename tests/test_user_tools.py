"""tools/inference.py, tools/analysis/get_flops.py and tools/analysis/benchmark.py on CPU.

A narrow Mask R-CNN and UperNet (slimmed as in ``tiny_runs``) with real Runner checkpoints of
their own; the tools run in this process through their ``main(argv)``.
"""

import cv2
import numpy as np
import pytest
import torch
from mmengine.runner import Runner
from paper_targets import TARGETS
from tiny_runs import (CONFIG_DIR, divide_sizes, load_config, load_tool, one_thread,
                       prepare_tiny_run, slim_rcnn, tiny_images, tiny_upernet_run, write_coco)

from mmconvnext.analysis import default_input_size

inference, get_flops, benchmark = map(load_tool, ('inference.py', 'analysis/get_flops.py',
                                                  'analysis/benchmark.py'))


@pytest.fixture(scope='module', autouse=True)
def single_thread():
    with one_thread():
        yield


def save_tiny_model(cfg, tmp):
    """``cfg`` (with its test pipelines' sizes divided like the rest) written to ``tmp``, and a
    checkpoint of its randomly initialised model saved by mmengine's Runner; both paths."""
    divide_sizes(cfg.test_pipeline)  # mmseg's inference API reads this copy of the pipeline
    runner = Runner.from_cfg(cfg)
    runner.save_checkpoint(str(tmp), 'tiny.pth', save_optimizer=False,
                           save_param_scheduler=False)
    cfg.dump(tmp / 'tiny.py')
    return str(tmp / 'tiny.py'), str(tmp / 'tiny.pth')


@pytest.fixture(scope='module')
def tiny_detector(tmp_path_factory):
    """Mask R-CNN with a narrow ConvNeXt-T and slim heads: (config, checkpoint) paths."""
    tmp = tmp_path_factory.mktemp('det')
    write_coco(tmp / 'coco', np.random.default_rng(0))
    cfg = load_config('mask_rcnn_convnext_t')
    prepare_tiny_run(cfg, tmp, tmp / 'coco')
    slim_rcnn(cfg.model)
    cfg.train_dataloader.dataset.update(ann_file='instances.json', data_prefix=dict(img='images/'))
    return save_tiny_model(cfg, tmp)


@pytest.fixture(scope='module')
def tiny_segmentor(tmp_path_factory):
    """UperNet with a narrow ConvNeXt-T and 64 / 32-channel heads: (config, checkpoint) paths."""
    tmp = tmp_path_factory.mktemp('seg')
    return save_tiny_model(tiny_upernet_run(tmp), tmp)


@pytest.fixture(scope='module')
def image_folder(tmp_path_factory):
    """Two 96x64 images with a bright rectangle each, and a text file to be left alone."""
    folder = tmp_path_factory.mktemp('images')
    for index, image in enumerate(tiny_images(np.random.default_rng(1), 2)[0]):
        cv2.imwrite(str(folder / f'image_{index}.{("jpg", "png")[index]}'), image)
    (folder / 'notes.txt').write_text('not an image')
    return folder


def assert_drawn(image_path, out_dir):
    """The PNG of ``image_path`` in ``out_dir`` has its size and differs from it visibly."""
    image = cv2.imread(str(image_path))
    drawn = cv2.imread(str(out_dir / f'{image_path.stem}.png'))
    assert drawn.shape == image.shape
    changed = np.abs(drawn.astype(int) - image.astype(int)).max(axis=2) > 30
    assert changed.mean() > 0.05


# --- tools/inference.py ---------------------------------------------------------------------


@pytest.mark.parametrize('model, options', [('tiny_detector', ['--score-thr', '0']),
                                            ('tiny_segmentor', [])])
def test_inference_draws_every_image_of_a_folder_and_a_single_image(
        model, options, image_folder, tmp_path, request):
    config, checkpoint = request.getfixturevalue(model)
    images = sorted(image_folder.glob('image_*'))

    inference.main([str(image_folder), config, checkpoint, '--out-dir', str(tmp_path / 'all'),
                    '--device', 'cpu', *options])
    inference.main([str(images[1]), config, checkpoint, '--out-dir', str(tmp_path / 'one'),
                    *options])

    assert sorted(path.name for path in (tmp_path / 'all').iterdir()) == [
        'image_0.png', 'image_1.png']
    for image in images:
        assert_drawn(image, tmp_path / 'all')
    assert [path.name for path in (tmp_path / 'one').iterdir()] == ['image_1.png']
    assert_drawn(images[1], tmp_path / 'one')


def test_inference_refuses_bad_input(tiny_detector, tiny_segmentor, image_folder, tmp_path):
    det_config, det_checkpoint = tiny_detector
    seg_config, seg_checkpoint = tiny_segmentor
    image = str(sorted(image_folder.glob('image_*'))[0])
    empty = tmp_path / 'empty'
    empty.mkdir()
    (empty / 'notes.txt').write_text('')
    broken = tmp_path / 'broken.jpg'
    broken.write_bytes(b'not a jpeg')
    classifier = tmp_path / 'classifier.py'
    classifier.write_text("default_scope = 'mmpretrain'\n")

    def refused(*args):
        with pytest.raises(SystemExit) as exit_info:
            inference.main([*map(str, args), '--out-dir', str(tmp_path / 'out')])
        return str(exit_info.value.code)

    assert 'missing.jpg does not exist' in refused(
        tmp_path / 'missing.jpg', det_config, det_checkpoint)
    assert 'holds no image' in refused(empty, det_config, det_checkpoint)
    assert f'cannot read image {broken}' in refused(broken, det_config, det_checkpoint)
    assert 'nope.py does not exist' in refused(image, tmp_path / 'nope.py', det_checkpoint)
    assert 'nope.pth does not exist' in refused(image, det_config, tmp_path / 'nope.pth')
    assert "default_scope 'mmpretrain' is not supported" in refused(
        image, classifier, det_checkpoint)
    assert '--score-thr applies to detection' in refused(
        image, seg_config, seg_checkpoint, '--score-thr', '0.5')
    misfit = refused(image, det_config, seg_checkpoint)
    assert f'checkpoint {seg_checkpoint} does not fit' in misfit
    assert 'lacks weights of neck (16), rpn_head (6), roi_head' in misfit
    assert 'weights the model lacks, of decode_head' in misfit
    narrower_head = refused(image, seg_config, seg_checkpoint,
                            '--cfg-options', 'model.decode_head.channels=32')
    assert ('shapes differ, first decode_head.conv_seg.weight: checkpoint (150, 64, 1, 1), '
            'model (150, 32, 1, 1)') in narrower_head
    assert not (tmp_path / 'out').exists()


# --- tools/analysis/get_flops.py ------------------------------------------------------------


def flops_rows(capsys, *args):
    """The table rows get_flops prints, as lists of cells."""
    get_flops.main(list(map(str, args)))
    lines = capsys.readouterr().out.splitlines()
    return [[cell.strip() for cell in line.strip('|').split('|')] for line in lines[2:]]


@pytest.mark.parametrize('name', ['cascade_convnext_t', 'upernet_convnext_t',
                                  'upernet_convnext_b_22k_640'])
def test_default_flops_input_is_the_papers(name):
    assert default_input_size(load_config(name)) == TARGETS[name].input_size


def test_get_flops_of_mask_rcnn_t_matches_the_paper(capsys, tmp_path):
    """48.095M (as mmdet's own config) and 262G at 1280x800; targets read from a markdown table."""
    targets = tmp_path / 'targets.md'
    targets.write_text('| config | #params | FLOPs | AP |\n|---|---|---|---|\n'
                       '| mask_rcnn_convnext_t | 48M | 262G | 46.2 |\n\n'
                       '| arch | #params | FLOPs |\n|---|---|---|\n| T | 28.6M | 4.5G |\n')
    assert get_flops.read_targets(targets) == {'mask_rcnn_convnext_t': (48, 262), 'T': (28.6, 4.5)}

    (row, ) = flops_rows(capsys, CONFIG_DIR / 'mask_rcnn_convnext_t.py', '--targets', targets)

    name, shape, params, flops, target_params, target_flops, params_dev, flops_dev = row
    assert (name, shape, params) == ('mask_rcnn_convnext_t', '800x1280', '48.095')
    assert float(flops) == pytest.approx(262, abs=0.5)
    assert (target_params, target_flops, params_dev) == ('48', '262', '+0.2%')
    assert abs(float(flops_dev.rstrip('%'))) < 0.2


def test_get_flops_shape_option_and_bad_input(capsys):
    config = CONFIG_DIR / 'upernet_convnext_t.py'
    (row, ) = flops_rows(capsys, config, '--shape', 256, 512)
    assert row[:3] == ['upernet_convnext_t', '256x512', '60.243']
    # UperNet's FLOPs grow with the pixel count: 939G at 512x2048, 1/8 of the pixels here.
    assert float(row[3]) == pytest.approx(939 / 8, rel=0.02)

    for args, message in ((['nope.py'], 'nope.py does not exist'),
                          ([], 'give either CONFIG or --all'),
                          ([config, '--shape', 0, 512], 'sides must be positive')):
        with pytest.raises(SystemExit):
            get_flops.main(list(map(str, args)))
        assert message in capsys.readouterr().err


# --- tools/analysis/benchmark.py ------------------------------------------------------------


def test_benchmark_prints_speed_and_memory_of_a_tiny_detector(tiny_detector, capsys):
    config, checkpoint = tiny_detector
    benchmark.main([config, checkpoint, '--warmup', '1', '--iters', '2', '--batch-size', '2'])

    header, _, row, note = capsys.readouterr().out.splitlines()[-4:]
    fields = dict(zip(header.strip('|').split('|'), row.strip('|').split('|')))
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    assert fields['device'].startswith('cpu') and fields['torch'] == torch.__version__
    # The divided test scale (166, 100): a 160x100 image, as 1280x800 for (1333, 800).
    assert (fields['config'], fields['input HxW'], fields['batch'], fields['AMP']) == (
        'tiny', '100x160', '2', 'no')
    assert float(fields['images/s']) > 0 and float(fields['peak memory (MiB)']) > 0
    assert note == '2 timed batches after 1 warm-up; memory: weights + rise of the RSS over ' \
                   'the timed batches'


def test_benchmark_refuses_bad_input(tiny_detector, capsys, tmp_path):
    config, _ = tiny_detector
    for args, message in (([tmp_path / 'nope.py'], 'nope.py does not exist'),
                          ([config, tmp_path / 'nope.pth'], 'nope.pth does not exist'),
                          ([config, '--iters', 0], '--iters 0: must be >= 1'),
                          ([config, '--batch-size', 0], '--batch-size 0: must be >= 1'),
                          ([config, '--device', 'cpu', '--amp'], '--amp needs a CUDA device')):
        with pytest.raises(SystemExit):
            benchmark.main(list(map(str, args)))
        assert message in capsys.readouterr().err
