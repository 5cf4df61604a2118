# Copyright (c) mmovl contributors. All rights reserved.
"""mmengine's OneCycleLR with a state dict that a weights-only load reads.

mmengine's ``OneCycleParamScheduler`` keeps its annealing function as a
bound method (``self.anneal_func = self._annealing_cos``) and its
``state_dict()`` returns every attribute, so each checkpoint pickles that
method; ``torch.load(weights_only=True)`` (torch >= 2.6, and mmovl's loader
on purpose) then refuses the checkpoint, and ``--resume`` fails. This
subclass leaves the method out of the state and restores it from
``anneal_strategy``. The schedule is mmengine's, unchanged.
"""
from mmengine.optim.scheduler import OneCycleLR
from mmpretrain.registry import PARAM_SCHEDULERS


@PARAM_SCHEDULERS.register_module()
class CheckpointableOneCycleLR(OneCycleLR):
    """``OneCycleLR`` whose state dict holds plain data only.

    Args:
        *args: mmengine's ``OneCycleLR`` arguments.
        anneal_strategy (str): ``'cos'`` or ``'linear'``. Defaults to
            ``'cos'``.
        **kwargs: mmengine's ``OneCycleLR`` keyword arguments.
    """

    def __init__(self, *args, anneal_strategy: str = 'cos', **kwargs):
        super().__init__(*args, anneal_strategy=anneal_strategy, **kwargs)
        self.anneal_strategy = anneal_strategy

    def state_dict(self) -> dict:
        state = super().state_dict()
        state.pop('anneal_func', None)
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = {
            k: v
            for k, v in state_dict.items() if k != 'anneal_func'
        }
        super().load_state_dict(state_dict)
        self.anneal_func = (
            self._annealing_cos
            if self.anneal_strategy == 'cos' else self._annealing_linear)
