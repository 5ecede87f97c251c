"""Bad samples: ``tools/check_dataset.py`` finds each injected defect before a run (file and
annotation id / dataset index, exit 1; exit 0 on clean data); during training a bad sample is
named by file and dataset index, or skipped and counted with ``skip_bad_samples``; the
annotations ``CocoDataset`` drops are reported once at start."""
import json
import re

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import DATASETS, init_default_scope
from PIL import Image
from tiny_runs import (ade_config, load_tool, run_tool, tiny_mask_rcnn_config, train_scalars,
                       write_config)

from mmconvnext.datasets import BadSampleError
from mmconvnext.datasets.dataset_check import leaf_dataset_configs
from mmconvnext.datasets.image_files import ImageFileError, image_size
from mmconvnext.datasets.label_maps import label_map_problems


def truncate(path):
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])


def add_annotation(coco, like_index, **changes):
    """A copy of ``coco['annotations'][like_index]`` with a new id and ``changes``."""
    annotation = dict(coco['annotations'][like_index], **changes)
    annotation['id'] = max(entry['id'] for entry in coco['annotations']) + 1
    coco['annotations'].append(annotation)
    return annotation['id']


@pytest.fixture(scope='module')
def bad_coco(tmp_path_factory):
    """The tiny Mask R-CNN config; its train split has 2.jpg truncated, a zero-width box on
    1.jpg, a category id (91) outside the 80 categories on 2.jpg, and a missing 3.jpg. Returns
    the config path and the injected annotation ids."""
    tmp = tmp_path_factory.mktemp('bad_coco')
    config = tiny_mask_rcnn_config(tmp)
    train = tmp / 'coco' / 'train2017'
    truncate(train / '2.jpg')
    ann_file = tmp / 'coco' / 'annotations' / 'instances_train2017.json'
    coco = json.loads(ann_file.read_text())
    zero_width = add_annotation(coco, 0, bbox=[8, 8, 0, 32])
    unknown_category = add_annotation(coco, 1, category_id=91)
    coco['images'].append(dict(coco['images'][0], id=3, file_name='3.jpg'))
    add_annotation(coco, 0, image_id=3)
    ann_file.write_text(json.dumps(coco))
    return config, train, dict(zero_width=zero_width, unknown_category=unknown_category)


def test_check_dataset_names_each_coco_defect_and_exits_1(bad_coco, capsys):
    config, train, ids = bad_coco
    assert load_tool('check_dataset.py').main([str(config), '--workers', '2']) == 1
    out = capsys.readouterr().out
    assert f'{train}/2.jpg (image id 2): image truncated: no JPEG end marker' in out
    assert (f'{train}/1.jpg (image id 1, annotation id {ids["zero_width"]}): zero-size box '
            '[8, 8, 0, 32]') in out
    assert (f'{train}/2.jpg (image id 2, annotation id {ids["unknown_category"]}): category id '
            '91 is none of the 80 category ids') in out
    assert f'{train}/3.jpg (image id 3): image missing' in out
    assert '3 images, 5 annotations checked, 4 problems' in out
    assert out.rstrip().endswith('4 problems found')


def test_check_dataset_passes_clean_coco(tmp_path, capsys):
    config = tiny_mask_rcnn_config(tmp_path)
    assert load_tool('check_dataset.py').main([str(config), '--workers', '1']) == 0
    assert capsys.readouterr().out.rstrip().endswith('no problems found')


def built_train_dataset(config):
    """The training dataset of ``config``, built and initialised as the Runner does."""
    cfg = Config.fromfile(config)
    MMLogger.get_instance('test_bad_samples')
    init_default_scope(cfg.default_scope)
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    dataset.full_init()
    return dataset


def test_dataset_wrappers_are_looked_through():
    wrapped = dict(type='ConcatDataset', datasets=[
        dict(type='RepeatDataset', times=2, dataset=dict(type='CocoDataset')),
        dict(type='CocoDataset', ann_file='b.json')])
    assert list(leaf_dataset_configs(wrapped, 'train_dataloader.dataset')) == [
        ('train_dataloader.dataset.datasets[0].dataset', dict(type='CocoDataset')),
        ('train_dataloader.dataset.datasets[1]', dict(type='CocoDataset', ann_file='b.json'))]


def test_check_dataset_refuses_other_datasets_and_names_a_missing_data_root(tmp_path, capsys):
    config = str(tiny_mask_rcnn_config(tmp_path))
    check_dataset = load_tool('check_dataset.py')
    assert check_dataset.main([config, '--cfg-options',
                               'train_dataloader.dataset.type=VOCDataset']) == 2
    assert ('tools/check_dataset.py: error: train_dataloader.dataset: VOCDataset is neither a '
            'COCO-style dataset') in capsys.readouterr().err
    missing = tmp_path / 'missing'
    assert check_dataset.main([config, '--cfg-options',
                               f'train_dataloader.dataset.data_root={missing}']) == 2
    assert (f'tools/check_dataset.py: error: train_dataloader.dataset.data_root: {missing} does '
            'not exist') in capsys.readouterr().err


def test_coco_training_names_the_bad_sample_and_reports_dropped_annotations(bad_coco, capsys):
    config, train, ids = bad_coco
    dataset = built_train_dataset(config)
    report = capsys.readouterr().out
    assert '2 of 5 annotations dropped' in report
    assert (f'1 zero-size box: annotation id {ids["zero_width"]} in 1.jpg: zero-size box '
            '[8, 8, 0, 32]') in report
    assert f'1 unknown category: annotation id {ids["unknown_category"]} in 2.jpg' in report
    with pytest.raises(BadSampleError, match=re.escape(
            f'CheckedCocoDataset: dataset index 1, image {train}/2.jpg, image id 2: '
            f'AssertionError: failed to load image: {train}/2.jpg')):
        dataset[1]


def test_skipped_coco_samples_are_counted_in_the_log_with_dataloader_workers(bad_coco, tmp_path):
    config, train, _ = bad_coco
    work_dir = tmp_path / 'work_dir'
    out = run_tool('train.py', config, '--work-dir', work_dir, '--cfg-options',
                   'train_dataloader.dataset.skip_bad_samples=True', 'train_cfg.max_epochs=1',
                   'train_dataloader.num_workers=2', 'train_dataloader.persistent_workers=False'
                   ).stdout
    assert 'CheckedCocoDataset' in out and '2 of 5 annotations dropped' in out
    assert f'skipped CheckedCocoDataset: dataset index 1, image {train}/2.jpg' in out
    ((first, second), ) = train_scalars(work_dir)
    assert 1 <= first['skipped_samples'] <= second['skipped_samples']
    assert re.search(r'Epoch\(train\) \[1\]\[2/2\].*skipped_samples: [1-9]', out)


def write_bad_label_maps(root):
    """Into a tiny ADE20K: training 0.png holds value 200 (not a class) where it held class 3,
    training 1.png is 8 px too narrow, validation 2.png is missing."""
    labels = root / 'annotations'
    label = cv2.imread(str(labels / 'training' / '0.png'), cv2.IMREAD_UNCHANGED)
    label[label == 3] = 200
    cv2.imwrite(str(labels / 'training' / '0.png'), label)
    label = cv2.imread(str(labels / 'training' / '1.png'), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(labels / 'training' / '1.png'), label[:, 8:])
    (labels / 'validation' / '2.png').unlink()


def test_check_dataset_names_each_bad_ade20k_label_map(tmp_path, capsys):
    config = ade_config(tmp_path, max_iters=1, checkpoint_interval=1)
    cfg = Config.fromfile(config)
    cfg.val_dataloader = cfg.test_dataloader
    write_config(cfg, config)
    check_dataset = load_tool('check_dataset.py')
    assert check_dataset.main([str(config), '--workers', '1']) == 0
    labels = tmp_path / 'ADEChallengeData2016' / 'annotations'
    write_bad_label_maps(tmp_path / 'ADEChallengeData2016')
    capsys.readouterr()
    assert check_dataset.main([str(config), '--workers', '1']) == 1
    out = capsys.readouterr().out
    assert (f'{labels}/training/0.png (dataset index 0): label map holds values 200, outside 0 '
            '(ignored), the classes 1..150 and 255 (ignored)') in out
    assert f'{labels}/training/1.png (dataset index 1): label map is 88x64, its image 96x64' in out
    assert f'{labels}/validation/2.png (dataset index 0): label map missing' in out
    assert out.rstrip().endswith('3 problems found')


def test_ade20k_training_names_each_bad_label_map(tmp_path):
    config = ade_config(tmp_path, max_iters=1, checkpoint_interval=1)
    root = tmp_path / 'ADEChallengeData2016'
    write_bad_label_maps(root)
    dataset = built_train_dataset(config)

    def raises_naming(index, error):
        image = root / 'images' / 'training' / f'{index}.jpg'
        label_map = root / 'annotations' / 'training' / f'{index}.png'
        return pytest.raises(BadSampleError, match=re.escape(
            f'CheckedADE20KDataset: dataset index {index}, image {image}, label map {label_map}: '
            f'{error}'))

    with raises_naming(0, 'ValueError: labels [199] (stored value - 1: reduce_zero_label) '
                       'outside the classes 0..149 and 255'):
        dataset[0]
    with raises_naming(1, 'ValueError: label map 88x64, image 96x64'):
        dataset[1]
    (root / 'annotations' / 'training' / '0.png').unlink()
    with raises_naming(0, 'FileNotFoundError'):
        dataset[0]


@pytest.mark.parametrize('extension, message', [
    ('.jpg', 'truncated: no JPEG end marker in its last 1024 bytes'),
    ('.png', 'unreadable (image file is truncated)')])
def test_truncated_image_is_found_by_header_and_end(tmp_path, extension, message):
    path = tmp_path / f'image{extension}'
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 255, (48, 80, 3), np.uint8))
    assert image_size(path) == image_size(path, decode=True) == (48, 80)
    truncate(path)
    for decode in (False, True):
        with pytest.raises(ImageFileError, match=re.escape(message)):
            image_size(path, decode=decode)


def test_label_map_with_colour_channels_is_named(tmp_path):
    path = tmp_path / 'label.png'
    Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(path)
    assert label_map_problems(str(path), (4, 6), 150, True) == [
        'label map has 3 channels, expected 1']
