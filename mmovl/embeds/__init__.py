# Copyright (c) mmovl contributors. All rights reserved.
"""Precomputed CLIP-teacher embeddings: how they are computed and stored.

- :mod:`.label_cache`: label (text) embeddings, one safetensors file per
  vocabulary, keyed by the hash of what determines them (``CLIPTeacher``'s
  disk cache).
- :mod:`.image_cache`: one embedding per image of a data set, keyed by image
  path, in one safetensors file (``tools/misc/cache_teacher_embeds.py``,
  read by ``LoadTeacherEmbedding``).
- :mod:`.proposal_store`: per-image proposal boxes and their embeddings, in
  a sharded store keyed by image id (read by ``LoadCLIPProposalEmbeds``).
- :mod:`.vild`: ViLD's offline targets, which fill that store
  (``tools/misc/precompute_vild_embeds.py``).

Nothing here imports mmovl's models, data sets or inferencers: the teacher
is passed in, so every layer of mmovl can use these modules.
"""
from .image_cache import (encode_dataset_images, load_teacher_embeds,
                          save_teacher_embeds)
from .label_cache import (CorruptCacheError, EmbeddingCache, make_cache_key,
                          sha256_file)
from .proposal_store import ProposalEmbedStore, ProposalEmbedStoreError
from .vild import (build_proposal_dataset, build_proposal_model,
                   precompute_vild_embeds)

__all__ = [
    'CorruptCacheError', 'EmbeddingCache', 'ProposalEmbedStore',
    'ProposalEmbedStoreError', 'build_proposal_dataset',
    'build_proposal_model', 'encode_dataset_images', 'load_teacher_embeds',
    'make_cache_key', 'precompute_vild_embeds', 'save_teacher_embeds',
    'sha256_file'
]
