# Copyright (c) mmovl contributors. All rights reserved.
"""mmovl: open-vocabulary recognition for MMPretrain and MMDetection.

Importing the package registers every mmovl component into the host
frameworks' registries (classification parts into mmpretrain's, detection
parts into mmdet's), so ``custom_imports=dict(imports=['mmovl'])`` is all a
config needs. Besides registering (components, and mmovl's open_clip
architectures such as ``'mmovl-toy-vit'``), importing it changes nothing:
mmengine's checkpoint loading (see :mod:`mmovl.utils.safe_checkpoint_loading`
to opt in), lvis and the logging set-up are left as they are.
"""
import mmcv
import mmengine
from mmengine.utils import digit_version

from .version import __version__, version_info

# The stack mmovl is tested against; mmdet 3.3.0 itself refuses mmcv>=2.2.0.
_REQUIREMENTS = {
    'mmcv': (mmcv.__version__, '2.1.0', '2.2.0'),
    'mmengine': (mmengine.__version__, '0.10.7', '1.0.0'),
}


def _check_version(name: str, installed: str, minimum: str,
                   maximum: str) -> None:
    if not (digit_version(minimum) <= digit_version(installed) <
            digit_version(maximum)):
        raise ImportError(
            f'mmovl {__version__} needs {minimum} <= {name} < {maximum}, but '
            f'{name} {installed} is installed. Run `bash tools/install.sh` '
            f'(or `make install`) from the mmovl repository to install the '
            f'tested stack.')


for _name, (_installed, _min, _max) in _REQUIREMENTS.items():
    _check_version(_name, _installed, _min, _max)

import mmdet  # noqa: E402  (after the mmcv check: mmdet asserts on it too)
import mmpretrain  # noqa: E402

_check_version('mmdet', mmdet.__version__, '3.3.0', '3.4.0')
_check_version('mmpretrain', mmpretrain.__version__, '1.2.0', '1.3.0')

# Register the components (import order matters only for readability).
from . import utils  # noqa: E402,F401
from . import apis  # noqa: E402,F401
from . import datasets  # noqa: E402,F401
from . import engine  # noqa: E402,F401
from . import evaluation  # noqa: E402,F401
from . import models  # noqa: E402,F401

__all__ = ['__version__', 'version_info']
