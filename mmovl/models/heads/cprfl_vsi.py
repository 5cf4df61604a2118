# Copyright (c) mmovl contributors. All rights reserved.
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS


@MODELS.register_module()
class CPRFLVSIBlock(BaseModule):
    r"""CPRFL's visual-semantic interaction block, as its authors' code
    computes it (github jiexuanyan/CPRFL, ``src/models/TF.py``, one layer).

    Two pre-normed sublayers **without residual connections** and without a
    final norm:

    .. math::

        Y = \mathrm{Attn}(\mathrm{LN}_1(Z)), \qquad
        \mathrm{out} = \mathrm{FFN}(\mathrm{LN}_2(Y)),

    where the attention has ``num_heads`` heads of width ``head_dims``
    (q / k / v projections without bias to ``num_heads * head_dims``, scale
    ``head_dims ** -0.5``, output projection with bias, then dropout), and
    the FFN is Linear -> GELU -> dropout -> Linear -> dropout.

    Without the residuals the refined prompt :math:`p'_i` is a function of
    the attended tokens only; a standard encoder layer
    (``nn.TransformerEncoderLayer``) adds :math:`p_i` itself, so its score
    :math:`\langle p'_i, p_i \rangle` carries an image-independent
    :math:`\langle p_i, p_i \rangle` term.

    Args:
        embed_dims (int): Width d of the tokens. Defaults to 2048.
        num_heads (int): Attention heads. Defaults to 8.
        head_dims (int): Width of each head (the authors' ``dim_head``);
            the attention's inner width is ``num_heads * head_dims``.
            Defaults to 512.
        feedforward_channels (int): Hidden width of the FFN. Defaults to
            2048.
        dropout (float): Dropout after the attention's output projection
            and in the FFN. Defaults to 0.1.
        init_cfg (dict, optional): Defaults to None (PyTorch's default
            initialisation, as the authors).

    Examples:
        >>> import torch
        >>> from mmovl.models.heads import CPRFLVSIBlock
        >>> block = CPRFLVSIBlock(embed_dims=16, num_heads=2, head_dims=8,
        ...                       feedforward_channels=32)
        >>> block(torch.randn(2, 7, 16)).shape
        torch.Size([2, 7, 16])
    """

    def __init__(self,
                 embed_dims: int = 2048,
                 num_heads: int = 8,
                 head_dims: int = 512,
                 feedforward_channels: int = 2048,
                 dropout: float = 0.1,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.head_dims = head_dims
        inner = num_heads * head_dims
        self.norm1 = nn.LayerNorm(embed_dims)
        self.qkv = nn.Linear(embed_dims, 3 * inner, bias=False)
        self.out_proj = nn.Linear(inner, embed_dims)
        self.norm2 = nn.LayerNorm(embed_dims)
        self.ffn = nn.Sequential(
            nn.Linear(embed_dims, feedforward_channels), nn.GELU(),
            nn.Dropout(dropout), nn.Linear(feedforward_channels, embed_dims),
            nn.Dropout(dropout))
        self.dropout = nn.Dropout(dropout)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """Multi-head self-attention of ``x`` (B, n, d), no residual."""
        batch, num = x.shape[:2]
        q, k, v = self.qkv(x).view(batch, num, 3, self.num_heads,
                                   self.head_dims).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(
            q, k, v, scale=self.head_dims**-0.5)
        out = out.transpose(1, 2).reshape(batch, num, -1)
        return self.dropout(self.out_proj(out))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """The block on the token sequence ``z`` (B, n, d)."""
        return self.ffn(self.norm2(self.attention(self.norm1(z))))
