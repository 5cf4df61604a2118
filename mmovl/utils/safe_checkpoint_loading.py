# Copyright (c) mmovl contributors. All rights reserved.
"""Import this module to switch on mmovl's safe checkpoint loading.

Importing it calls :func:`mmovl.utils.enable_safe_checkpoint_loading`:
mmengine's ``CheckpointLoader`` then reads every local checkpoint (resume,
``load_from``, ``init_cfg=dict(type='Pretrained')``) with
``torch.load(weights_only=True)`` and the allow-list of the types mmengine
itself writes, for the rest of the process. That makes ``--resume`` work on
torch >= 2.6 (whose plain ``weights_only=True`` refuses mmengine's
``HistoryBuffer``) without ever unpickling arbitrary code.

``import mmovl`` alone leaves mmengine's loader as it is; mmovl's own tools
switch it on themselves. For a project that trains mmovl's models with its
own tools (or ``mim train``), name it in the config::

    custom_imports = dict(
        imports=['mmovl', 'mmovl.utils.safe_checkpoint_loading'],
        allow_failed_imports=False)
"""
from .checkpoint import enable_safe_checkpoint_loading

enable_safe_checkpoint_loading()
