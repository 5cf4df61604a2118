# Copyright (c) mmovl contributors. All rights reserved.
from typing import Optional, Sequence, Tuple

import open_clip
import torch
import torch.nn as nn
from mmengine.logging import MMLogger
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from ..utils.open_clip_utils import (load_open_clip_state_dict,
                                     open_clip_vit_tokens,
                                     quiet_open_clip_random_init,
                                     read_open_clip_state_dict,
                                     register_open_clip_config)


@MODELS.register_module()
class OpenCLIPViT(BaseModule):
    """The image tower of an open_clip ViT as an MMPretrain backbone.

    MKT's student starts from the CLIP image encoder itself. Using
    open_clip's own module (rather than converting its weights into
    MMPretrain's ``VisionTransformer``) loads any open_clip checkpoint
    exactly, with no key mapping to maintain, keeps CLIP's numerics
    (QuickGELU variants, ``ln_pre``) and keeps the visual projection that the
    two-stream head starts from. The output is MMPretrain's convention of a
    tuple of stages; the one stage is ``(cls_token, patch_tokens)`` after
    ``ln_post`` and *before* the projection, which belongs to the head.

    Since no output goes through it, CLIP's projection (:attr:`proj`,
    ``visual.proj``) is frozen: it is kept, as loaded, for the head to start
    from (and under the same state-dict key, so checkpoints load either
    way), but a trainable parameter that the loss never reaches would stop
    DistributedDataParallel at its second iteration ("Expected to have
    finished reduction in the prior iteration") and waste optimizer state.

    Args:
        model_name (str): open_clip architecture. Defaults to ``'ViT-B-16'``.
        checkpoint (str, optional): Local open_clip weights (the full CLIP
            state dict, or one of its image tower); only ``visual.*`` is
            used. Defaults to None (random initialisation).
        model_cfg (dict, optional): A custom architecture in open_clip's JSON
            format, registered as ``model_name``. Defaults to None.
        frozen_stages (int): Freeze the patch and position embeddings,
            ``ln_pre`` and this many transformer blocks (MKT's code freezes
            10 of ViT-B/16's 12). 0 freezes nothing. Defaults to 0.
        out_type (str): What the one stage holds, after ``ln_post``:
            ``'cls_patches'`` the pair ``(cls_token (B, W), patch_tokens
            (B, L, W))`` (MKT's two streams); as MMPretrain's
            ``VisionTransformer``, ``'cls_token'`` (B, W), ``'featmap'`` the
            patch tokens as a map (B, W, h, w) (e.g. for CPRFL's head) or
            ``'avg_featmap'`` their mean (B, W). Defaults to
            ``'cls_patches'``.
        init_cfg (dict, optional): Defaults to None.

    Examples:
        >>> import torch, mmovl
        >>> from mmpretrain.registry import MODELS
        >>> net = MODELS.build(dict(type='OpenCLIPViT',
        ...                         model_name='mmovl-toy-vit'))
        >>> cls_token, patches = net(torch.randn(2, 3, 64, 64))[-1]
        >>> cls_token.shape, patches.shape
        (torch.Size([2, 64]), torch.Size([2, 64, 64]))
    """

    OUT_TYPES = ('cls_patches', 'cls_token', 'featmap', 'avg_featmap')

    def __init__(self,
                 model_name: str = 'ViT-B-16',
                 checkpoint: Optional[str] = None,
                 model_cfg: Optional[dict] = None,
                 frozen_stages: int = 0,
                 out_type: str = 'cls_patches',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if out_type not in self.OUT_TYPES:
            raise ValueError(f'out_type must be one of {self.OUT_TYPES}, got '
                             f'{out_type!r}')
        self.out_type = out_type
        if model_cfg is not None:
            register_open_clip_config(model_name, model_cfg)
        with quiet_open_clip_random_init():
            clip = open_clip.create_model(
                model_name, pretrained_image=False, pretrained_text=False)
        if checkpoint is not None:
            state = read_open_clip_state_dict(checkpoint)
            if not any(k.startswith('visual.') for k in state):
                state = {f'visual.{k}': v for k, v in state.items()}
            visual_state = {
                k[len('visual.'):]: v
                for k, v in state.items() if k.startswith('visual.')
            }
            load_open_clip_state_dict(clip.visual, visual_state, checkpoint,
                                      model_name)
            MMLogger.get_current_instance().info(
                f'OpenCLIPViT: {model_name} image tower from {checkpoint}')
        visual = clip.visual
        if not isinstance(visual, open_clip.transformer.VisionTransformer):
            raise TypeError(f'{model_name} has no ViT image tower '
                            f'({type(visual).__name__})')
        if visual.attn_pool is not None or visual.final_ln_after_pool or \
                visual.pool_type != 'tok':
            raise ValueError(
                f'OpenCLIPViT needs a CLS-token ViT; {model_name} pools with '
                f'{visual.pool_type!r}')
        self.visual = visual
        # Unused by forward() (the head projects): frozen, see above.
        if visual.proj is not None:
            visual.proj.requires_grad_(False)
        self.model_name = model_name
        self.frozen_stages = frozen_stages
        if frozen_stages > len(visual.transformer.resblocks):
            raise ValueError(f'frozen_stages={frozen_stages} but {model_name}'
                             f' has {len(visual.transformer.resblocks)} '
                             'blocks')
        self._freeze_stages()

    @property
    def width(self) -> int:
        """int: Token width W (the head's input channels)."""
        return self.visual.conv1.out_channels

    @property
    def proj(self) -> torch.Tensor:
        """torch.Tensor: CLIP's visual projection, (W, D), used as
        ``tokens @ proj``; frozen (the backbone's outputs are before it)."""
        return self.visual.proj

    def _frozen_modules(self) -> Sequence[nn.Module]:
        if self.frozen_stages <= 0:
            return []
        v = self.visual
        return [v.conv1, v.ln_pre, v.patch_dropout] + list(
            v.transformer.resblocks[:self.frozen_stages])

    def _freeze_stages(self) -> None:
        if self.frozen_stages <= 0:
            return
        v = self.visual
        v.class_embedding.requires_grad_(False)
        v.positional_embedding.requires_grad_(False)
        for m in self._frozen_modules():
            m.eval()
            m.requires_grad_(False)

    def train(self, mode: bool = True) -> 'OpenCLIPViT':
        super().train(mode)
        self._freeze_stages()
        return self

    def init_weights(self) -> None:
        # Weights come from the checkpoint (or open_clip's own init).
        pass

    def get_layer_depth(self, param_name: str,
                        prefix: str = '') -> Tuple[int, int]:
        """Layer depth of a parameter, for layer-wise lr decay (MMPretrain's
        ``LearningRateDecayOptimWrapperConstructor``).

        Depth 0 is the stem (patch, class and position embeddings,
        ``ln_pre``), block ``i`` is depth ``i + 1``, and everything after the
        blocks (``ln_post``, the projection, any head) is the last depth.

        Args:
            param_name (str): The parameter's name in the model.
            prefix (str): This backbone's prefix in that name. Defaults to
                ''.

        Returns:
            tuple[int, int]: The depth and the number of depths.
        """
        num_depths = len(self.visual.transformer.resblocks) + 2
        if not param_name.startswith(prefix):
            return num_depths - 1, num_depths
        name = param_name[len(prefix):]
        if name.startswith('visual.'):
            name = name[len('visual.'):]
        if name.split('.')[0] in ('class_embedding', 'positional_embedding',
                                  'conv1', 'ln_pre', 'patch_dropout'):
            return 0, num_depths
        if name.startswith('transformer.resblocks.'):
            return int(name.split('.')[2]) + 1, num_depths
        return num_depths - 1, num_depths

    def forward(self, x: torch.Tensor) -> tuple:
        v = self.visual
        cls_token, patches = open_clip_vit_tokens(v, x)
        if self.out_type == 'cls_patches':
            return ((cls_token, patches), )
        if self.out_type == 'cls_token':
            return (cls_token, )
        if self.out_type == 'avg_featmap':
            return (patches.mean(dim=1), )
        h, w = v.grid_size
        return (patches.transpose(1, 2).reshape(patches.shape[0], -1, h, w), )
