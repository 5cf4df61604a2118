# Copyright (c) mmovl contributors. All rights reserved.
from .checkpoint import mmengine_safe_globals, safe_torch_load
from .dist import (CPUDistributedDataParallel, setup_cpu_distributed,
                   teardown_distributed, write_test_json_on_main_only)
from .fileio import (TMP_PREFIX, atomic_write, atomic_write_json,
                     atomic_write_lines, atomic_write_text, load_json)

__all__ = [
    'CPUDistributedDataParallel', 'TMP_PREFIX', 'atomic_write',
    'atomic_write_json', 'atomic_write_lines', 'atomic_write_text',
    'load_json', 'mmengine_safe_globals',
    'safe_torch_load', 'setup_cpu_distributed', 'teardown_distributed',
    'write_test_json_on_main_only'
]
