# Copyright (c) mmovl contributors. All rights reserved.
"""UniCL's image-text-label data: label and caption sources in one dataset."""
import csv
import numbers
import os.path as osp
from typing import Dict, List, Sequence, Union

from mmengine.dataset import BaseDataset as _EngineDataset
from mmengine.logging import MMLogger
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

from ..utils import load_json

SourceCfg = Union[dict, _EngineDataset]


def _clean_caption(caption, where: str) -> str:
    if not isinstance(caption, str) or not caption.strip():
        raise ValueError(f'{where}: caption must be a non-empty string, got '
                         f'{caption!r}')
    return caption.strip()


@DATASETS.register_module()
class CocoCaptionPairs(BaseDataset):
    """Image-caption pairs read from a COCO captions file.

    Every annotation (one caption) is one pair, so an image with five
    captions gives five samples. Data infos: ``img_path``, ``text`` (the
    caption, stripped) and ``img_id``; there are no classes.

    Args:
        ann_file (str): COCO captions json (``images`` with ``id`` and
            ``file_name``, ``annotations`` with ``image_id`` and
            ``caption``), relative to ``data_root``.
        data_root (str): Root of ``ann_file`` and ``data_prefix``.
            Defaults to ''.
        **kwargs: Passed to :class:`mmpretrain.datasets.BaseDataset`
            (``data_prefix`` for the image folder...).

    Examples:
        >>> from mmovl.datasets.unicl_dataset import CocoCaptionPairs
        >>> ds = CocoCaptionPairs(  # doctest: +SKIP
        ...     data_root='data/toy_world',
        ...     ann_file='annotations/captions_train.json',
        ...     data_prefix='train')
        >>> ds.get_data_info(0)['text']  # doctest: +SKIP
        'there is a red circle and two blue squares.'
    """

    def __init__(self, ann_file: str, data_root: str = '', **kwargs) -> None:
        super().__init__(ann_file=ann_file, data_root=data_root, **kwargs)

    def load_data_list(self) -> List[dict]:
        ann = load_json(self.ann_file)
        for key in ('images', 'annotations'):
            if key not in ann:
                raise ValueError(f'{self.ann_file} is not a COCO captions '
                                 f'file: no "{key}" field')
        files = {img['id']: img['file_name'] for img in ann['images']}
        img_prefix = self.data_prefix.get('img_path', '')
        data_list = []
        for i, a in enumerate(ann['annotations']):
            where = f'{self.ann_file}: annotation {a.get("id", f"#{i}")}'
            if 'caption' not in a:
                raise ValueError(f'{where} has no "caption" field')
            if a.get('image_id') not in files:
                raise ValueError(
                    f'{where} has unknown image_id {a.get("image_id")}')
            data_list.append(
                dict(
                    img_path=osp.join(img_prefix, files[a['image_id']]),
                    text=_clean_caption(a['caption'], where),
                    img_id=a['image_id']))
        return data_list


@DATASETS.register_module()
class CsvCaptionPairs(BaseDataset):
    """Image-caption pairs read from a CSV/TSV file, one pair a row.

    The layout of open_clip's csv loader: a header row naming an image path
    column (``filepath``) and a caption column (``title``), tab-separated by
    default. Data infos: ``img_path`` and ``text``.

    Args:
        ann_file (str): The table, relative to ``data_root``.
        img_key (str): Column of image paths (relative to ``data_prefix``).
            Defaults to ``'filepath'``.
        caption_key (str): Column of captions. Defaults to ``'title'``.
        sep (str): Field separator. Defaults to ``'\\t'``.
        data_root (str): Root of ``ann_file`` and ``data_prefix``.
            Defaults to ''.
        **kwargs: Passed to :class:`mmpretrain.datasets.BaseDataset`.

    Examples:
        >>> from mmovl.datasets.unicl_dataset import CsvCaptionPairs
        >>> ds = CsvCaptionPairs(  # doctest: +SKIP
        ...     ann_file='pairs.csv', sep=',', data_prefix='images')
    """

    def __init__(self,
                 ann_file: str,
                 img_key: str = 'filepath',
                 caption_key: str = 'title',
                 sep: str = '\t',
                 data_root: str = '',
                 **kwargs) -> None:
        self.img_key = img_key
        self.caption_key = caption_key
        self.sep = sep
        super().__init__(ann_file=ann_file, data_root=data_root, **kwargs)

    def load_data_list(self) -> List[dict]:
        img_prefix = self.data_prefix.get('img_path', '')
        data_list = []
        with open(self.ann_file, newline='', encoding='utf-8') as f:
            reader = csv.DictReader(f, delimiter=self.sep)
            missing = [
                k for k in (self.img_key, self.caption_key)
                if k not in (reader.fieldnames or ())
            ]
            if missing:
                raise ValueError(
                    f'{self.ann_file}: no column(s) {missing}; the header '
                    f'has {reader.fieldnames} (sep={self.sep!r})')
            # Rows are numbered as a text editor shows them (header = 1).
            for line, row in enumerate(reader, start=2):
                where = f'{self.ann_file}: line {line}'
                if not row[self.img_key]:
                    raise ValueError(f'{where} has an empty {self.img_key!r}')
                data_list.append(
                    dict(
                        img_path=osp.join(img_prefix, row[self.img_key]),
                        text=_clean_caption(row[self.caption_key], where)))
        return data_list


def _describe(source: _EngineDataset) -> str:
    return (f'{type(source).__name__}(ann_file={source.ann_file!r}, '
            f'data_prefix={source.data_prefix!r})')


@DATASETS.register_module()
class UniCLDataset(BaseDataset):
    """Image-label and image-text data as UniCL's image-text-label triplets.

    Label sources are single-label classification datasets: any mmpretrain
    dataset whose data infos have ``img_path`` and an int ``gt_label`` and
    whose metainfo has ``classes`` (``CustomDataset``, ``ImageNet``,
    :class:`~mmovl.datasets.CocoObjectCrops`...). Their class names are
    merged *by name* into one vocabulary, in order of first appearance, so
    a name shared by two sources is one label. Text sources give image-
    caption pairs (:class:`CocoCaptionPairs`, :class:`CsvCaptionPairs`);
    pair ``k`` (counted over all text sources, in order) gets the label
    ``len(classes) + k``, a positive only for itself, which makes the UniCL
    loss CLIP's loss on caption data.

    Data infos:

    - ``img_path`` (str) and ``gt_label`` (int, the UniCL label);
    - ``class_name`` (str) for label samples, turned into a prompt at load
      time by :class:`~mmovl.datasets.transforms.PromptText` (a new template
      each draw), or ``text`` (str) for caption samples;
    - ``crop_bbox`` (``[x1, y1, x2, y2]``) when the label source has one,
      for :class:`~mmovl.datasets.transforms.CropBox`.

    The metainfo has ``classes`` (the merged vocabulary) and
    ``num_text_pairs``. The sources' own pipelines are not used.

    Args:
        label_sources (Sequence[dict | BaseDataset]): Configs (or built
            instances) of the image-label datasets. Defaults to ().
        text_sources (Sequence[dict | BaseDataset]): Configs (or built
            instances) of the image-text datasets. Defaults to ().
        label_repeat (int): Each label sample appears this many times per
            epoch. Defaults to 1.
        text_repeat (int): Each caption pair appears this many times per
            epoch (with its one label). Defaults to 1.
        data_root (str): Given to the source configs that set no
            ``data_root`` of their own. Defaults to ''.
        **kwargs: Passed to :class:`mmpretrain.datasets.BaseDataset`
            (``pipeline``, ``test_mode``, ``lazy_init``...).

    Examples:
        >>> from mmovl.datasets.unicl_dataset import UniCLDataset
        >>> ds = UniCLDataset(  # doctest: +SKIP
        ...     data_root='data/toy_world',
        ...     label_sources=[dict(
        ...         type='CocoObjectCrops', data_prefix='train',
        ...         ann_file='annotations/instances_train.json')],
        ...     text_sources=[dict(
        ...         type='CocoCaptionPairs', data_prefix='train',
        ...         ann_file='annotations/captions_train.json')])
        >>> len(ds.metainfo['classes'])  # doctest: +SKIP
        30
    """

    def __init__(self,
                 label_sources: Sequence[SourceCfg] = (),
                 text_sources: Sequence[SourceCfg] = (),
                 label_repeat: int = 1,
                 text_repeat: int = 1,
                 data_root: str = '',
                 **kwargs) -> None:
        if not label_sources and not text_sources:
            raise ValueError('UniCLDataset needs at least one of '
                             'label_sources and text_sources')
        for name, value in (('label_repeat', label_repeat),
                            ('text_repeat', text_repeat)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f'{name} must be an int >= 1, got {value!r}')
        if 'classes' in kwargs or 'classes' in (kwargs.get('metainfo')
                                                or {}):
            raise ValueError('UniCLDataset takes its classes from the label '
                             'sources; do not pass `classes`')
        self.label_sources = list(label_sources)
        self.text_sources = list(text_sources)
        self.label_repeat = label_repeat
        self.text_repeat = text_repeat
        self._source_root = data_root
        super().__init__(ann_file='', data_root=data_root, **kwargs)

    def _build(self, cfg: SourceCfg) -> _EngineDataset:
        if isinstance(cfg, _EngineDataset):
            source = cfg
        else:
            cfg = dict(cfg)
            if self._source_root:
                cfg.setdefault('data_root', self._source_root)
            # The source lives only until its infos are copied here.
            cfg.setdefault('serialize_data', False)
            source = DATASETS.build(cfg)
        source.full_init()
        if len(source.pipeline.transforms):
            MMLogger.get_current_instance().warning(
                f'{_describe(source)}: its pipeline is ignored; UniCLDataset '
                f'applies its own')
        return source

    def _label_samples(self, vocab: Dict[str, int]) -> List[dict]:
        samples = []
        for cfg in self.label_sources:
            source = self._build(cfg)
            classes = source.metainfo.get('classes')
            if not classes:
                raise ValueError(
                    f'label source {_describe(source)} has no metainfo '
                    f'"classes"; a label source must name its classes')
            to_global = [vocab.setdefault(n, len(vocab)) for n in classes]
            for i in range(len(source)):
                info = source.get_data_info(i)
                label = info.get('gt_label')
                if (not isinstance(label, numbers.Integral)
                        or isinstance(label, bool)):
                    raise TypeError(
                        f'label source {_describe(source)}, sample {i} '
                        f'({info.get("img_path")}): gt_label must be one int, '
                        f'got {label!r}')
                if not 0 <= label < len(classes):
                    raise ValueError(
                        f'label source {_describe(source)}, sample {i}: '
                        f'gt_label {label} is outside its {len(classes)} '
                        f'classes')
                if 'img_path' not in info:
                    raise KeyError(f'label source {_describe(source)}, '
                                   f'sample {i} has no "img_path"')
                sample = dict(
                    img_path=info['img_path'],
                    gt_label=to_global[label],
                    class_name=classes[label])
                if info.get('crop_bbox') is not None:
                    sample['crop_bbox'] = [float(v) for v in info['crop_bbox']]
                samples.append(sample)
        return samples

    def _text_samples(self) -> List[dict]:
        samples = []
        for cfg in self.text_sources:
            source = self._build(cfg)
            for i in range(len(source)):
                info = source.get_data_info(i)
                for key in ('img_path', 'text'):
                    if key not in info:
                        raise KeyError(f'text source {_describe(source)}, '
                                       f'sample {i} has no "{key}"')
                samples.append(dict(img_path=info['img_path'],
                                    text=info['text']))
        return samples

    def load_data_list(self) -> List[dict]:
        vocab: Dict[str, int] = {}
        label_samples = self._label_samples(vocab)
        text_samples = self._text_samples()
        for k, sample in enumerate(text_samples):
            sample['gt_label'] = len(vocab) + k
        self._metainfo.update(
            classes=tuple(vocab), num_text_pairs=len(text_samples))
        MMLogger.get_current_instance().info(
            f'UniCLDataset: {len(label_samples)} image-label samples '
            f'(x{self.label_repeat}) over {len(vocab)} classes, '
            f'{len(text_samples)} image-text pairs (x{self.text_repeat})')
        return (label_samples * self.label_repeat +
                text_samples * self.text_repeat)

    def extra_repr(self) -> List[str]:
        """The extra repr information of the dataset."""
        return [
            f'Label sources: \t{len(self.label_sources)} '
            f'(x{self.label_repeat})',
            f'Text sources: \t{len(self.text_sources)} (x{self.text_repeat})'
        ]
