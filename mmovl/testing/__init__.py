# Copyright (c) mmovl contributors. All rights reserved.
"""Rehearsal support: miniature data sets in their official formats and
random-weight checkpoints at the real architectures, so that every real
config can train, resume and test on a machine without downloads.

Nothing here is imported by ``import mmovl``; tests and
``tools/misc/rehearse.py`` import it explicitly.
"""
