# Copyright (c) mmovl contributors. All rights reserved.
from .backbones import *  # noqa: F401,F403
from .classifiers import *  # noqa: F401,F403
from .dense_heads import *  # noqa: F401,F403
from .detectors import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .prompts import *  # noqa: F401,F403
from .roi_heads import *  # noqa: F401,F403
from .teachers import *  # noqa: F401,F403
