"""Every file and annotation of a config's datasets that would fail or is degenerate, found
before a long run (``tools/check_dataset.py``).

Each dataset of ``train_dataloader`` and ``val_dataloader`` (inside dataset wrappers too) is
built from the config as the Runner builds it, but without loading its annotations
(``lazy_init=True``), for its joined paths, classes and options. Then:

- COCO-style datasets (mmdet's ``CocoDataset`` and subclasses): the annotation file is read as
  json. Each image file is checked by :func:`~.image_files.image_size` against its entry's
  height and width; each annotation by :func:`~.coco_annotations.annotation_problems` (masks
  when the pipeline's ``LoadAnnotations`` has ``with_mask``); annotation ids must be unique
  (mmdet asserts it) and belong to an image.
- semantic-segmentation datasets (mmseg's ``BaseSegDataset`` and subclasses): the dataset lists
  its samples as in training; each image is checked by :func:`~.image_files.image_size`, each
  label map by :func:`~.label_maps.label_map_problems`.

Files are checked in ``workers`` processes, images by header + end marker, or fully decoded
with ``decode``.
"""
import json
import multiprocessing
import os.path as osp
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial

from mmengine.registry import DATASETS, init_default_scope
from tqdm import tqdm

from mmconvnext.engine.runner_setup import SetupError
from .coco_annotations import annotation_problems
from .image_files import ImageFileError, image_size
from .label_maps import label_map_problems

#: The dataloaders whose datasets are checked (as ``runner_setup``'s ``(dataloader, evaluator)``
#: pairs; the evaluators' files are not needed here).
CHECKED_SPLITS = (('train_dataloader', None), ('val_dataloader', None))
#: The keys of a COCO image entry that the dataset reads.
IMAGE_KEYS = ('file_name', 'height', 'width')
#: Files per batch handed to a worker process.
CHUNK_SIZE = 64


@dataclass(frozen=True)
class Problem:
    """One problem: the file, what identifies the sample / annotation, what is wrong."""
    path: str
    ids: str
    message: str

    def __str__(self):
        return f'{self.path} ({self.ids}): {self.message}'


@dataclass
class DatasetReport:
    """What was checked in one dataset and the problems found, in dataset order."""
    where: str
    description: str
    counts: Counter = field(default_factory=Counter)
    problems: list = field(default_factory=list)

    def summary(self):
        checked = ', '.join(f'{count} {name}' for name, count in self.counts.items())
        return f'{self.where}: {self.description}: {checked} checked, ' \
               f'{len(self.problems)} problem{"" if len(self.problems) == 1 else "s"}'


def leaf_dataset_configs(dataset_cfg, where):
    """(where, config) of the datasets in ``dataset_cfg``, through wrappers' ``dataset`` /
    ``datasets``; ``where`` is the config key path, e.g. ``train_dataloader.dataset.dataset``."""
    if 'dataset' in dataset_cfg:
        yield from leaf_dataset_configs(dataset_cfg['dataset'], f'{where}.dataset')
    elif 'datasets' in dataset_cfg:
        for index, child in enumerate(dataset_cfg['datasets']):
            yield from leaf_dataset_configs(child, f'{where}.datasets[{index}]')
    else:
        yield where, dataset_cfg


def check_config_datasets(cfg, workers=1, decode=False):
    """A :class:`DatasetReport` per dataset of :data:`CHECKED_SPLITS` in ``cfg``.

    Raises :class:`SetupError` for a dataset that is neither COCO-style nor an mmseg
    segmentation dataset.
    """
    init_default_scope(cfg.get('default_scope'))
    # The workers start before any annotation file is loaded: they need none of it.
    with multiprocessing.Pool(workers) if workers > 1 else nullcontext() as pool:
        reports = []
        for split, _ in CHECKED_SPLITS:
            if not cfg.get(split):
                continue
            for where, dataset_cfg in leaf_dataset_configs(cfg[split]['dataset'],
                                                           f'{split}.dataset'):
                dataset = DATASETS.build({**dataset_cfg, 'lazy_init': True})
                reports.append(check_dataset(dataset, dataset_cfg, where, pool, decode))
    return reports


def check_dataset(dataset, dataset_cfg, where, pool=None, decode=False):
    """The :class:`DatasetReport` of a lazily built ``dataset`` (its config: ``dataset_cfg``);
    files are checked in ``pool`` (a ``multiprocessing.Pool``), or here if None."""
    from mmdet.datasets import CocoDataset
    from mmseg.datasets import BaseSegDataset
    if isinstance(dataset, CocoDataset):
        return _check_coco(dataset, _loads_masks(dataset_cfg.get('pipeline', [])), where,
                           pool, decode)
    if isinstance(dataset, BaseSegDataset):
        return _check_segmentation(dataset, where, pool, decode)
    raise SetupError(f'{where}: {type(dataset).__name__} is neither a COCO-style dataset (mmdet '
                     'CocoDataset) nor a segmentation dataset (mmseg BaseSegDataset)')


def _loads_masks(transforms):
    """Whether a pipeline config (transforms nested in lists or ``transforms``) loads masks."""
    for transform in transforms:
        if isinstance(transform, list):
            nested = transform
        elif str(transform.get('type', '')).endswith('LoadAnnotations'):
            if transform.get('with_mask', False):
                return True
            nested = []
        else:
            nested = transform.get('transforms', [])
        if _loads_masks(nested):
            return True
    return False


def _check_coco(dataset, with_mask, where, pool, decode):
    report = DatasetReport(where, f'{type(dataset).__name__} {dataset.ann_file}')
    with open(dataset.ann_file) as file:
        coco = json.load(file)
    classes = set(dataset.metainfo['classes'])
    category_ids = {category['id'] for category in coco['categories']
                    if category['name'] in classes}
    images = {image['id']: image for image in coco['images']}
    image_folder = dataset.data_prefix['img']
    # Image files in the workers (only path and size travel to them), annotations here.
    items = [(osp.join(image_folder, str(image.get('file_name'))), image)
             for image in images.values()]
    report.problems.extend(_run(partial(_coco_image_problems, decode=decode), items, pool,
                                f'{where} images'))
    for annotation in tqdm(coco['annotations'], desc=f'{where} annotations', unit='annotation',
                           mininterval=1):
        image = images.get(annotation.get('image_id'))
        if image is None:
            report.problems.append(Problem(
                dataset.ann_file, f'annotation id {annotation.get("id")}',
                f'image id {annotation.get("image_id")} not among the images (never used)'))
        elif all(key in image for key in IMAGE_KEYS):
            report.problems.extend(
                Problem(osp.join(image_folder, image['file_name']),
                        f'image id {image["id"]}, annotation id {annotation.get("id")}', message)
                for message in annotation_problems(annotation, image, category_ids, with_mask))
    repeated = Counter(annotation.get('id') for annotation in coco['annotations'])
    report.problems.extend(
        Problem(dataset.ann_file, f'annotation id {annotation_id}',
                f'annotation id used {count} times (CocoDataset fails)')
        for annotation_id, count in repeated.items() if count > 1)
    report.counts.update(images=len(images), annotations=len(coco['annotations']))
    return report


def _coco_image_problems(item, decode):
    path, image = item
    ids = f'image id {image["id"]}'
    if not all(key in image for key in IMAGE_KEYS):
        return [Problem(path, ids, f'image entry lacks one of {", ".join(IMAGE_KEYS)}')]
    size, problems = _image_problems(path, ids, decode)
    if size is not None and size != (image['height'], image['width']):
        problems.append(Problem(path, ids, f'image is {size[1]}x{size[0]}, its annotation says '
                                f'{image["width"]}x{image["height"]}'))
    return problems


def _image_problems(path, ids, decode):
    """(height, width) of the image file (None if it does not load) and its problems."""
    try:
        return image_size(path, decode), []
    except ImageFileError as error:
        return None, [Problem(path, ids, f'image {error}')]


def _check_segmentation(dataset, where, pool, decode):
    dataset.full_init()
    report = DatasetReport(where, f'{type(dataset).__name__} {dataset.data_prefix["img_path"]}')
    check = partial(_segmentation_sample_problems, num_classes=len(dataset.metainfo['classes']),
                    reduce_zero_label=dataset.reduce_zero_label, decode=decode)
    items = [(index, dataset.get_data_info(index)) for index in range(len(dataset))]
    report.problems.extend(_run(check, items, pool, f'{where} images'))
    report.counts.update({'images': len(items), 'label maps': sum(
        bool(info.get('seg_map_path')) for _, info in items)})
    return report


def _segmentation_sample_problems(item, num_classes, reduce_zero_label, decode):
    index, info = item
    ids = f'dataset index {index}'
    size, problems = _image_problems(info['img_path'], ids, decode)
    if info.get('seg_map_path'):
        problems.extend(
            Problem(info['seg_map_path'], ids, message) for message in label_map_problems(
                info['seg_map_path'], size, num_classes, reduce_zero_label))
    return problems


def _run(check, items, pool, description):
    """Problems of ``check(item)`` for each item, in order, checked in ``pool`` (None: here),
    with a progress bar (tqdm, on stderr)."""
    results = pool.imap(check, items, chunksize=CHUNK_SIZE) if pool else map(check, items)
    problems = []
    for found in tqdm(results, total=len(items), desc=description, unit='file', mininterval=1):
        problems.extend(found)
    return problems
