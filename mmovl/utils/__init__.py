# Copyright (c) mmovl contributors. All rights reserved.
from .checkpoint import (check_state_dict_fits,
                         enable_safe_checkpoint_loading,
                         mmengine_safe_globals,
                         safe_checkpoint_loading_enabled, safe_torch_load,
                         scoped_safe_checkpoint_loading,
                         state_dict_mismatches)
from .dist import (CPUDistributedDataParallel, setup_cpu_distributed,
                   teardown_distributed, write_test_json_on_main_only)
from .fileio import (TMP_PREFIX, atomic_write, atomic_write_json,
                     atomic_write_lines, atomic_write_text, load_json)

__all__ = [
    'CPUDistributedDataParallel', 'TMP_PREFIX', 'atomic_write',
    'atomic_write_json', 'atomic_write_lines', 'atomic_write_text',
    'load_json', 'mmengine_safe_globals',
    'safe_torch_load', 'setup_cpu_distributed', 'teardown_distributed',
    'write_test_json_on_main_only',
    'check_state_dict_fits', 'enable_safe_checkpoint_loading',
    'safe_checkpoint_loading_enabled', 'scoped_safe_checkpoint_loading',
    'state_dict_mismatches'
]
