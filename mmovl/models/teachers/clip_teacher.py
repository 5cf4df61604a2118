# Copyright (c) mmovl contributors. All rights reserved.
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple, Union

import open_clip
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import MODELS as MMDET_MODELS
from mmengine.dist import is_main_process
from mmengine.logging import MMLogger
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS

from mmovl.embeds.label_cache import (CorruptCacheError, EmbeddingCache,
                                      make_cache_key, weights_id)
from mmovl.utils.progress import Progress
from mmovl.utils.vocabulary import truncated_names
from ..utils.open_clip_utils import (load_open_clip_state_dict,
                                     quiet_open_clip_random_init,
                                     read_open_clip_state_dict,
                                     register_open_clip_config)
from .templates import resolve_templates

# register_open_clip_config lives in mmovl.models.utils (the open_clip
# layer); it is re-exported here for code that imported it from the teacher.
__all__ = ['CLIPTeacher', 'register_open_clip_config']


@MMPRETRAIN_MODELS.register_module()
class CLIPTeacher(BaseModule):
    """A frozen open_clip model giving image and label embeddings.

    Weights come from a local file (``checkpoint``); open_clip's pretrained
    tags, which download, are used only when named via ``pretrained``. The
    model stays frozen and in eval mode whatever the surrounding model does.

    The open_clip model is deliberately **not** a registered submodule: it
    stays out of the student's ``state_dict`` (the checkpoints it writes do
    not carry the teacher's ~150M parameters, which are reloaded from
    ``checkpoint`` when the teacher is built), out of ``parameters()`` (so no
    optimizer or ``init_cfg`` of the student touches it) and out of DDP's
    parameter sync. Device and dtype moves (``.to()``, ``.cuda()``,
    ``.half()``) are still forwarded to it. Reach it via :attr:`clip`.

    Label embeddings are cached in memory per (templates, names), and on disk
    when ``cache_dir`` is given, keyed by the architecture, the weights'
    content (SHA-256 of the checkpoint file, computed once), the templates
    and the names. A cache file that cannot be read is reported with a
    warning naming it, then recomputed and overwritten.

    Note:
        OpenAI's CLIP weights were trained with QuickGELU: use e.g.
        ``model_name='ViT-B-16-quickgelu'`` with them. Both architectures have
        the same parameters, so the wrong one loads without error but gives
        different embeddings.

    Args:
        model_name (str): The open_clip architecture (see
            ``open_clip.list_models()``) or a name for ``model_cfg``.
            Defaults to ``'ViT-B-16'``.
        checkpoint (str, optional): Local weights, ``.safetensors`` or a torch
            file (read with ``weights_only=True``) holding a state dict, raw or
            under ``'state_dict'``/``'model'``. Defaults to None.
        pretrained (str, optional): An open_clip pretrained tag (e.g.
            ``'openai'``), downloaded by open_clip; only instead of
            ``checkpoint``. Defaults to None.
        model_cfg (dict, optional): A custom architecture in open_clip's JSON
            model-config format, registered as ``model_name`` (see
            :func:`register_open_clip_config`). Defaults to None.
        cache_dir (str, optional): Folder of the on-disk label-embedding
            cache. Defaults to None (no disk cache).
        mean (Sequence[float], optional): Per-channel image mean on the 0-1
            scale callers normalise with. Defaults to None (open_clip's
            preprocess config of the model).
        std (Sequence[float], optional): Per-channel image std, as ``mean``.
            Defaults to None.
        batch_size (int): Prompts encoded per text-encoder call. Defaults to
            256.
        progress_threshold (int): Show the progress (a bar on a terminal, a
            few lines otherwise) when encoding more prompts than this.
            Defaults to 2048.

    Examples:
        >>> import torch
        >>> images = torch.randn(2, 3, 64, 64)
        >>> teacher = CLIPTeacher('mmovl-toy-vit', 'toy.pt')  # doctest: +SKIP
        >>> teacher.encode_image(images).shape  # doctest: +SKIP
        torch.Size([2, 64])
        >>> teacher.encode_labels(['cat', 'dog']).shape  # doctest: +SKIP
        torch.Size([2, 64])
    """

    def __init__(self,
                 model_name: str = 'ViT-B-16',
                 checkpoint: Optional[str] = None,
                 pretrained: Optional[str] = None,
                 model_cfg: Optional[dict] = None,
                 cache_dir: Optional[str] = None,
                 mean: Optional[Sequence[float]] = None,
                 std: Optional[Sequence[float]] = None,
                 batch_size: int = 256,
                 progress_threshold: int = 2048) -> None:
        super().__init__()
        if ':' in model_name:
            raise ValueError(
                f'CLIPTeacher takes an architecture name, not {model_name!r}; '
                "pass local weights via checkpoint=.")
        if model_cfg is not None:
            register_open_clip_config(model_name, model_cfg)
        arch_cfg = open_clip.get_model_config(model_name)
        if arch_cfg is None:
            raise ValueError(
                f'Unknown open_clip architecture {model_name!r}: pass its '
                'config as model_cfg, or pick one of open_clip.list_models().')
        if (checkpoint is None) == (pretrained is None):
            raise ValueError(
                'CLIPTeacher needs exactly one source of weights: '
                "checkpoint='<local file>' or pretrained='<open_clip tag>'.")

        self.model_name = model_name
        self.checkpoint = checkpoint
        self.pretrained = pretrained
        self.batch_size = batch_size
        self.progress_threshold = progress_threshold
        self._arch_cfg = arch_cfg
        self._weights_id: Optional[str] = None
        self._memory: Dict[Tuple[Tuple[str, ...], Tuple[str, ...]],
                           torch.Tensor] = {}
        self.cache = EmbeddingCache(
            cache_dir, prefix='clip-labels') if cache_dir else None

        clip = self._build_clip()
        clip.requires_grad_(False)
        clip.eval()
        # Kept out of nn.Module's registry on purpose, see the docstring.
        object.__setattr__(self, '_clip', clip)

        visual = clip.visual
        self.mean = tuple(mean if mean is not None else visual.image_mean)
        self.std = tuple(std if std is not None else visual.image_std)
        size = getattr(visual, 'image_size', None)
        self.image_size = (size, size) if isinstance(size, int) else \
            tuple(size) if size is not None else None
        self.embed_dim = int(arch_cfg['embed_dim'])
        self.tokenizer = open_clip.get_tokenizer(model_name)

    def _build_clip(self) -> nn.Module:
        logger = MMLogger.get_current_instance()
        common = dict(pretrained_image=False, pretrained_text=False)
        if self.pretrained is not None:
            if not open_clip.is_pretrained_cfg(self.model_name,
                                               self.pretrained):
                tags = open_clip.list_pretrained_tags_by_model(self.model_name)
                raise ValueError(
                    f'{self.pretrained!r} is not an open_clip pretrained tag '
                    f'of {self.model_name!r} (known: {tags}); for a local '
                    'file use checkpoint=.')
            logger.info(f'CLIPTeacher: open_clip {self.model_name} with '
                        f'pretrained={self.pretrained!r}.')
            return open_clip.create_model(
                self.model_name,
                pretrained=self.pretrained,
                require_pretrained=True,
                **common)

        path = osp.expanduser(str(self.checkpoint))
        if not osp.isfile(path):
            raise FileNotFoundError(f'CLIP checkpoint not found: {path}')
        state_dict = read_open_clip_state_dict(path)
        with quiet_open_clip_random_init():
            clip = open_clip.create_model(self.model_name, **common)
        load_open_clip_state_dict(clip, state_dict, path, self.model_name)
        logger.info(f'CLIPTeacher: open_clip {self.model_name} with weights '
                    f'from {path}.')
        return clip

    @property
    def clip(self) -> nn.Module:
        """nn.Module: The wrapped (frozen) open_clip model."""
        return self._clip

    @property
    def device(self) -> torch.device:
        """torch.device: Where the open_clip model lives."""
        return next(self._clip.parameters()).device

    def train(self, mode: bool = True) -> 'CLIPTeacher':
        """Stay in eval mode: a teacher never trains, whatever ``mode``."""
        return super().train(False)

    def _apply(self, fn, *args, **kwargs):
        # Forward .to()/.cuda()/.half() to the unregistered open_clip model.
        self._clip._apply(fn, *args, **kwargs)
        return super()._apply(fn, *args, **kwargs)

    def extra_repr(self) -> str:
        weights = self.checkpoint if self.pretrained is None else \
            f'open_clip:{self.pretrained}'
        return f'model_name={self.model_name!r}, weights={weights!r}'

    @torch.no_grad()
    def encode_image(self,
                     images: torch.Tensor,
                     normalize: bool = True) -> torch.Tensor:
        """Image embeddings, L2-normalised unless asked otherwise.

        Args:
            images (torch.Tensor): (B, 3, H, W) images, already resized to
                :attr:`image_size` and normalised with :attr:`mean` and
                :attr:`std`.
            normalize (bool): Return unit vectors. False gives CLIP's raw
                projected features (what MKT's official code distils
                toward). Defaults to True.

        Returns:
            torch.Tensor: (B, D) float32 embeddings.
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError('Expected images of shape (B, 3, H, W), got '
                             f'{tuple(images.shape)}.')
        if self.image_size is not None and \
                tuple(images.shape[-2:]) != self.image_size:
            raise ValueError(f'{self.model_name} takes {self.image_size} '
                             f'images, got {tuple(images.shape[-2:])}.')
        param = next(self._clip.parameters())
        images = images.to(device=param.device, dtype=param.dtype)
        embeds = self._clip.encode_image(images).float()
        return F.normalize(embeds, dim=-1) if normalize else embeds

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Alias of :meth:`encode_image`."""
        return self.encode_image(images)

    def encode_labels(
        self,
        names: Sequence[str],
        templates: Union[None, str, Sequence[str]] = None
    ) -> torch.Tensor:
        """L2-normalised label embeddings, averaged over prompt templates.

        Each name is put in every template, the prompts are encoded and
        normalised, averaged over the templates and normalised again. Results
        are cached (see the class docstring).

        Args:
            names (Sequence[str]): The label names; row ``i`` is ``names[i]``.
            templates (None | str | Sequence[str]): Templates with one
                ``'{}'``, or ``'default'``/``'ensemble'``
                (see :func:`resolve_templates`). Defaults to None
                (``('a photo of a {}.',)``).

        Returns:
            torch.Tensor: (C, D) float32 embeddings of unit norm (or as
            given to :meth:`store_label_embeds`), on :attr:`device`.
        """
        names, templates = self._check_names(names, templates)
        memory_key = (templates, names)
        embeds = self._memory.get(memory_key)
        if embeds is None:
            self._warn_cut_prompts(names, templates)
        if embeds is None or embeds.device != self.device:
            embeds = self._load_or_encode(names, templates) \
                if embeds is None else embeds
            embeds = self._memory[memory_key] = embeds.to(self.device)
        # A copy, so that callers editing theirs in place leave the cache be.
        return embeds.clone()

    def _warn_cut_prompts(self, names: Tuple[str, ...],
                          templates: Tuple[str, ...]) -> None:
        """Warn, naming them, about names whose prompts CLIP cuts at its
        context length, and louder about names it then cannot tell apart."""
        cut, alike = truncated_names(names, templates, self.tokenizer)
        logger = MMLogger.get_current_instance()
        if alike:
            logger.warning(
                f'CLIPTeacher: {len(alike)} groups of label names are equal '
                'in the first tokens CLIP reads (its context is cut), so '
                f'their embeddings and scores are equal: {alike[:5]}')
        elif cut:
            logger.warning(
                f'CLIPTeacher: the prompts of {len(cut)} label names are '
                'longer than CLIP\'s context and are cut; the end of each '
                f'name is not read: {cut[:5]}')

    def clear_cache(self) -> None:
        """Forget the label embeddings cached in memory."""
        self._memory.clear()

    @staticmethod
    def _check_names(
        names: Sequence[str], templates: Union[None, str, Sequence[str]]
    ) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
        if isinstance(names, str) or not all(
                isinstance(n, str) for n in names):
            raise TypeError('names must be a sequence of strings.')
        names = tuple(names)
        if not names:
            raise ValueError('names must not be empty.')
        return names, resolve_templates(templates)

    def label_cache_key(
        self,
        names: Sequence[str],
        templates: Union[None, str, Sequence[str]] = None
    ) -> str:
        """The disk-cache key of the label embeddings of ``names`` under
        ``templates`` (arguments as :meth:`encode_labels`)."""
        names, templates = self._check_names(names, templates)
        return make_cache_key(
            kind='mmovl-clip-label-embeddings',
            version=1,
            model_name=self.model_name,
            model_cfg=self._arch_cfg,
            weights=self.weights_id,
            templates=list(templates),
            names=list(names))

    def store_label_embeds(
        self,
        names: Sequence[str],
        embeds: torch.Tensor,
        templates: Union[None, str, Sequence[str]] = None,
        metadata: Optional[Dict[str, str]] = None
    ) -> Optional[str]:
        """Have :meth:`encode_labels` return these embeddings for ``names``
        and ``templates`` instead of encoding them, e.g. the label embeddings
        a released model was trained with
        (``tools/model_converters/mkt_to_mmovl.py``). They are kept as given
        (not normalised), in memory and, with ``cache_dir``, in the disk
        cache, where any entry of the same key is replaced.

        Args:
            names (Sequence[str]): The label names; row ``i`` is ``names[i]``.
            embeds (torch.Tensor): (C, D) embeddings.
            templates (None | str | Sequence[str]): As in
                :meth:`encode_labels`. Defaults to None.
            metadata (dict[str, str], optional): Extra strings for the cache
                file's header (e.g. where the embeddings come from).
                Defaults to None.

        Returns:
            str | None: The cache file written, or None without a disk cache.
        """
        names, templates = self._check_names(names, templates)
        shape = (len(names), self.embed_dim)
        if embeds.ndim != 2 or tuple(embeds.shape) != shape:
            raise ValueError(f'Expected label embeddings of shape {shape}, '
                             f'got {tuple(embeds.shape)}.')
        embeds = embeds.detach().float().cpu()
        self._memory[(templates, names)] = embeds.to(self.device)
        if self.cache is None:
            return None
        header = dict(
            model_name=self.model_name,
            weights=self.weights_id,
            num_names=str(len(names)),
            templates=json.dumps(templates))
        header.update(metadata or {})
        return self.cache.save(
            self.label_cache_key(names, templates), embeds, metadata=header)

    def _load_or_encode(self, names: Tuple[str, ...],
                        templates: Tuple[str, ...]) -> torch.Tensor:
        if self.cache is None:
            return self._encode_prompts(names, templates)
        logger = MMLogger.get_current_instance()
        key = self.label_cache_key(names, templates)
        try:
            embeds = self.cache.load(
                key, shape=(len(names), self.embed_dim))
        except CorruptCacheError as e:
            logger.warning(f'{e} Recomputing it.')
            embeds = None
        if embeds is not None:
            logger.info(f'CLIPTeacher: loaded {len(names)} label embeddings '
                        f'from {self.cache.path(key)}.')
            return embeds
        embeds = self._encode_prompts(names, templates)
        path = self.cache.save(
            key,
            embeds,
            metadata=dict(
                model_name=self.model_name,
                weights=self.weights_id,
                num_names=str(len(names)),
                templates=json.dumps(templates)))
        logger.info(f'CLIPTeacher: cached {len(names)} label embeddings in '
                    f'{path}.')
        return embeds

    @property
    def weights_id(self) -> str:
        """What identifies the weights: ``'sha256:<hex>'`` of the checkpoint
        file's content, or ``'open_clip:<tag>'`` for open_clip's pretrained
        tag. Caches and stores of this teacher's embeddings record it, and
        their readers compare it (hashed once per file and process)."""
        if self._weights_id is None:
            self._weights_id = weights_id(self.checkpoint, self.pretrained)
        return self._weights_id

    @torch.no_grad()
    def _encode_prompts(self, names: Tuple[str, ...],
                        templates: Tuple[str, ...]) -> torch.Tensor:
        prompts = [t.format(name) for name in names for t in templates]
        bar = None
        if len(prompts) > self.progress_threshold and is_main_process():
            MMLogger.get_current_instance().info(
                f'CLIPTeacher: encoding {len(prompts)} prompts '
                f'({len(names)} labels x {len(templates)} templates).')
            bar = Progress(len(prompts), 'CLIPTeacher prompts')
        device = self.device
        feats: List[torch.Tensor] = []
        for start in range(0, len(prompts), self.batch_size):
            batch = prompts[start:start + self.batch_size]
            tokens = self.tokenizer(batch).to(device)
            feats.append(
                F.normalize(self._clip.encode_text(tokens).float(), dim=-1))
            if bar is not None:
                bar.update(len(batch))
        if bar is not None:
            bar.close()
        feats = torch.cat(feats).view(len(names), len(templates), -1)
        return F.normalize(feats.mean(dim=1), dim=-1)


# mmovl is a plugin of both frameworks: detectors build the teacher from
# mmdet's registry, classifiers from mmpretrain's.
MMDET_MODELS.register_module(module=CLIPTeacher)
