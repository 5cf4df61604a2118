# Copyright (c) mmovl contributors. All rights reserved.
"""Automatic mixed precision on a machine without an accelerator."""
from contextlib import contextmanager
from typing import Optional, Union

import torch
import torch.nn as nn
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS

__all__ = ['CPUAmpOptimWrapper']


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """Mixed precision training on a CPU: bfloat16 autocast, no loss scale.

    mmengine's ``AmpOptimWrapper`` cannot be built without a GPU, NPU, MLU
    or MUSA device (it asserts one in ``__init__``, and its loss scaler is
    ``torch.cuda.amp.GradScaler``). This wrapper is what ``tools/train.py
    --amp`` uses where there is none: the forward pass and the loss run
    under ``torch.autocast('cpu', dtype=torch.bfloat16)``, so the ops that
    autocast lists (matmuls, linear layers, convolutions) run in bfloat16,
    while the parameters, their gradients and the optimizer state stay
    float32. bfloat16 has float32's exponent range, so small gradients do not
    underflow as in float16 and no loss scaling is needed (PyTorch's CPU
    autocast recipe uses none); backward, gradient clipping and the step are
    :class:`~mmengine.optim.OptimWrapper`'s. Its state dict is the plain
    wrapper's.

    Args:
        dtype (str | torch.dtype, optional): The autocast type; only
            bfloat16 (CPU autocast's type) is accepted. None means bfloat16.
            Defaults to ``'bfloat16'``.
        **kwargs: The arguments of :class:`~mmengine.optim.OptimWrapper`
            (``optimizer``, ``accumulative_counts``, ``clip_grad``).

    Examples:
        >>> import torch
        >>> model = torch.nn.Linear(4, 2)
        >>> wrapper = CPUAmpOptimWrapper(
        ...     optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
        >>> with wrapper.optim_context(model):
        ...     out = model(torch.randn(3, 4))
        >>> out.dtype, model.weight.dtype
        (torch.bfloat16, torch.float32)
    """

    def __init__(self,
                 dtype: Optional[Union[str, torch.dtype]] = 'bfloat16',
                 **kwargs) -> None:
        cast = torch.bfloat16 if dtype is None else dtype
        if isinstance(cast, str):
            cast = getattr(torch, cast, None)
        if cast is not torch.bfloat16:
            raise ValueError(
                'CPUAmpOptimWrapper autocasts to bfloat16 only (float16 on '
                f'a CPU would need loss scaling), got dtype={dtype!r}.')
        super().__init__(**kwargs)
        self.cast_dtype = cast

    @contextmanager
    def optim_context(self, model: nn.Module):
        """The wrapper's context (no gradient sync while accumulating) under
        bfloat16 CPU autocast.

        Args:
            model (nn.Module): The model being trained.
        """
        with super().optim_context(model), torch.autocast(
                device_type='cpu', dtype=self.cast_dtype):
            yield
