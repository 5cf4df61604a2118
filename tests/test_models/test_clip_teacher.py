# Copyright (c) mmovl contributors. All rights reserved.
import os
import shutil
from copy import deepcopy
from unittest import mock

import open_clip
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

from mmovl.models.teachers import (ENSEMBLE_TEMPLATES, CLIPTeacher,
                                   register_open_clip_config)
from mmovl.models.teachers import clip_teacher as clip_teacher_module

TINY = 'mmovl-test-tiny'
TINY_CFG = dict(
    embed_dim=16,
    vision_cfg=dict(
        image_size=32, layers=1, width=32, head_width=16, patch_size=16),
    text_cfg=dict(
        context_length=16, vocab_size=49408, width=32, heads=2, layers=1))
# The same tower sizes, another embedding dimension: projections misfit.
OTHER = 'mmovl-test-other'
OTHER_CFG = dict(deepcopy(TINY_CFG), embed_dim=24)
NAMES = ['cat', 'traffic light', 'dog']
TWO_TEMPLATES = ('a photo of a {}.', 'a drawing of the {}.')


def _random_clip(name, cfg, seed):
    register_open_clip_config(name, cfg)
    torch.manual_seed(seed)
    model = open_clip.create_model(name).eval()
    with torch.no_grad():  # make every tensor, even zero-initialised, count
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.02)
    return model


@pytest.fixture(scope='module')
def tiny_clip():
    return _random_clip(TINY, TINY_CFG, seed=0)


@pytest.fixture(scope='module')
def ckpt(tiny_clip, tmp_path_factory):
    """The tiny model's weights in the formats the teacher reads."""
    folder = tmp_path_factory.mktemp('ckpt')
    state_dict = tiny_clip.state_dict()
    paths = dict(
        pt=folder / 'tiny.pt',
        safetensors=folder / 'tiny.safetensors',
        wrapped=folder / 'tiny_wrapped.pth',
        ddp=folder / 'tiny_ddp.pth')
    torch.save(state_dict, paths['pt'])
    save_file({k: v.contiguous() for k, v in state_dict.items()},
              str(paths['safetensors']))
    torch.save(dict(state_dict=state_dict, meta=dict(epoch=3)),
               paths['wrapped'])
    torch.save(dict(model={f'module.{k}': v
                           for k, v in state_dict.items()}), paths['ddp'])
    return {k: str(v) for k, v in paths.items()}


def _teacher(path, **kwargs):
    return CLIPTeacher(TINY, checkpoint=path, model_cfg=TINY_CFG, **kwargs)


def _brute_force_labels(model, names, templates):
    tokenizer = open_clip.get_tokenizer(TINY)
    rows = []
    with torch.no_grad():
        for name in names:
            feats = [
                F.normalize(
                    model.encode_text(tokenizer([t.format(name)])), dim=-1)
                for t in templates
            ]
            rows.append(F.normalize(torch.cat(feats).mean(0), dim=-1))
    return torch.stack(rows)


@pytest.mark.parametrize('fmt', ['pt', 'safetensors', 'wrapped', 'ddp'])
def test_loads_saved_weights(tiny_clip, ckpt, fmt):
    teacher = _teacher(ckpt[fmt])
    expected = tiny_clip.state_dict()
    loaded = teacher.clip.state_dict()
    assert loaded.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(loaded[key], value), key
    assert teacher.embed_dim == 16
    assert teacher.image_size == (32, 32)
    assert teacher.mean == open_clip.OPENAI_DATASET_MEAN
    assert teacher.std == open_clip.OPENAI_DATASET_STD


def test_encode_image_matches_open_clip(tiny_clip, ckpt):
    teacher = _teacher(ckpt['pt'])
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = F.normalize(tiny_clip.encode_image(images), dim=-1)
    embeds = teacher.encode_image(images)
    assert embeds.shape == (3, 16) and embeds.dtype == torch.float32
    assert not embeds.requires_grad
    torch.testing.assert_close(embeds, expected)
    torch.testing.assert_close(embeds.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(teacher(images), expected)

    with pytest.raises(ValueError, match=r'\(B, 3, H, W\)'):
        teacher.encode_image(torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match='takes'):
        teacher.encode_image(torch.randn(1, 3, 48, 48))


def test_encode_labels_matches_brute_force(tiny_clip, ckpt):
    # batch_size 4 makes batches straddle the names' prompt groups.
    teacher = _teacher(ckpt['safetensors'], batch_size=4)
    embeds = teacher.encode_labels(NAMES, templates=TWO_TEMPLATES)
    expected = _brute_force_labels(tiny_clip, NAMES, TWO_TEMPLATES)
    assert embeds.shape == (3, 16) and embeds.dtype == torch.float32
    torch.testing.assert_close(embeds, expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(embeds.norm(dim=-1), torch.ones(3))
    # Averaging really happened: not the embedding of either template alone.
    single = _brute_force_labels(tiny_clip, NAMES, TWO_TEMPLATES[:1])
    assert not torch.allclose(embeds, single, atol=1e-4)

    torch.testing.assert_close(
        teacher.encode_labels(NAMES), single, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(
        teacher.encode_labels(NAMES, templates='ensemble'),
        teacher.encode_labels(NAMES, templates=list(ENSEMBLE_TEMPLATES)))

    with pytest.raises(TypeError):
        teacher.encode_labels('cat')
    with pytest.raises(ValueError, match='empty'):
        teacher.encode_labels([])
    with pytest.raises(ValueError, match='exactly one'):
        teacher.encode_labels(NAMES, templates=['no placeholder'])


def test_frozen_eval_and_out_of_the_students_state(ckpt):
    teacher = _teacher(ckpt['pt'])
    student = nn.Module()
    student.head = nn.Linear(16, 4)
    student.teacher = teacher
    assert all(not p.requires_grad for p in teacher.clip.parameters())

    student.train()
    assert teacher.train() is teacher
    assert not teacher.training
    assert not any(m.training for m in teacher.clip.modules())
    assert all(not p.requires_grad for p in teacher.clip.parameters())

    # Only the student's own weights are saved and optimised.
    assert set(student.state_dict()) == {'head.weight', 'head.bias'}
    assert len(list(student.parameters())) == 2
    assert 'mmovl-test-tiny' in repr(teacher)

    # Moves of the student still reach the teacher's weights.
    student.to(torch.float64)
    assert all(p.dtype == torch.float64 for p in teacher.clip.parameters())
    embeds = teacher.encode_image(torch.randn(2, 3, 32, 32))
    assert embeds.dtype == torch.float32
    assert teacher.encode_labels(['cat']).dtype == torch.float32


def test_bad_weights_name_the_file(ckpt, tmp_path):
    missing = str(tmp_path / 'nowhere' / 'clip.pt')
    with pytest.raises(FileNotFoundError, match='nowhere'):
        _teacher(missing)

    other = str(tmp_path / 'other.pt')
    torch.save(_random_clip(OTHER, OTHER_CFG, seed=1).state_dict(), other)
    with pytest.raises(ValueError, match='shape mismatch') as info:
        _teacher(other)
    assert other in str(info.value)

    partial = str(tmp_path / 'partial.pt')
    state_dict = torch.load(ckpt['pt'], weights_only=True)
    state_dict.pop('ln_final.weight')
    state_dict['extra.weight'] = torch.ones(1)
    torch.save(state_dict, partial)
    with pytest.raises(ValueError, match='missing keys: ln_final.weight') as \
            info:
        _teacher(partial)
    assert 'unexpected keys: extra.weight' in str(info.value)
    assert partial in str(info.value)

    # Pickled code is refused: the file is never loaded with
    # weights_only=False.
    pickled = str(tmp_path / 'pickled.pt')
    torch.save(dict(state_dict=nn.Linear(2, 2)), pickled)
    with pytest.raises(ValueError, match='Cannot read') as info:
        _teacher(pickled)
    assert pickled in str(info.value)


def test_argument_checks(ckpt):
    with pytest.raises(ValueError, match='exactly one source'):
        CLIPTeacher(TINY, model_cfg=TINY_CFG)
    with pytest.raises(ValueError, match='exactly one source'):
        _teacher(ckpt['pt'], pretrained='openai')
    with pytest.raises(ValueError, match='not an open_clip pretrained tag'):
        CLIPTeacher(TINY, pretrained='openai', model_cfg=TINY_CFG)
    with pytest.raises(ValueError, match='Unknown open_clip architecture'):
        CLIPTeacher('no-such-arch', checkpoint=ckpt['pt'])
    with pytest.raises(ValueError, match='architecture name'):
        CLIPTeacher('hf-hub:org/repo', checkpoint=ckpt['pt'])
    # A custom config never shadows a built-in architecture.
    with pytest.raises(ValueError, match='different config'):
        CLIPTeacher('ViT-B-16', checkpoint=ckpt['pt'], model_cfg=TINY_CFG)
    with pytest.raises(ValueError, match='lacks'):
        register_open_clip_config('mmovl-test-bad', dict(embed_dim=8))


def test_build_from_both_registries(ckpt):
    from mmdet.registry import MODELS as MMDET_MODELS
    from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS

    cfg = dict(
        type='CLIPTeacher',
        model_name=TINY,
        model_cfg=TINY_CFG,
        checkpoint=ckpt['pt'])
    for registry in (MMPRETRAIN_MODELS, MMDET_MODELS):
        assert registry.get('CLIPTeacher') is CLIPTeacher
        teacher = registry.build(cfg)
        assert isinstance(teacher, CLIPTeacher)


def test_toy_config_registered_on_import(tmp_path):
    assert 'mmovl-toy-vit' in open_clip.list_models()
    toy = open_clip.create_model('mmovl-toy-vit')
    path = str(tmp_path / 'toy.pt')
    torch.save(toy.state_dict(), path)
    teacher = CLIPTeacher('mmovl-toy-vit', checkpoint=path)
    assert teacher.encode_image(torch.randn(2, 3, 64, 64)).shape == (2, 64)
    assert teacher.encode_labels(NAMES).shape == (3, 64)


def _count_text_encoder(teacher):
    return mock.patch.object(
        teacher.clip, 'encode_text', wraps=teacher.clip.encode_text)


def test_memory_cache(ckpt):
    teacher = _teacher(ckpt['pt'])
    first = teacher.encode_labels(NAMES, TWO_TEMPLATES)
    with _count_text_encoder(teacher) as encoder:
        again = teacher.encode_labels(NAMES, list(TWO_TEMPLATES))
        assert encoder.call_count == 0
        again.zero_()  # the caller's copy, not the cached tensor
        assert torch.equal(teacher.encode_labels(NAMES, TWO_TEMPLATES), first)
        teacher.clear_cache()
        teacher.encode_labels(NAMES, TWO_TEMPLATES)
        assert encoder.call_count == 1


def test_disk_cache(tiny_clip, ckpt, tmp_path):
    cache_dir = str(tmp_path / 'cache')

    def cached_files():
        return sorted(os.listdir(cache_dir))

    from mmovl.embeds import label_cache
    with mock.patch.object(
            label_cache, 'sha256_file',
            wraps=label_cache.sha256_file) as hasher:
        teacher = _teacher(ckpt['pt'], cache_dir=cache_dir)
        first = teacher.encode_labels(NAMES, TWO_TEMPLATES)
        teacher.encode_labels(NAMES[:2], TWO_TEMPLATES)
        assert hasher.call_count == 1  # the checkpoint is hashed once
    assert len(cached_files()) == 2

    # A fresh teacher (empty memory) reads the file, no text encoding.
    fresh = _teacher(ckpt['pt'], cache_dir=cache_dir)
    with _count_text_encoder(fresh) as encoder:
        assert torch.equal(fresh.encode_labels(NAMES, TWO_TEMPLATES), first)
        assert encoder.call_count == 0

    # The key follows names (and their order) and templates ...
    fresh.encode_labels(NAMES[::-1], TWO_TEMPLATES)
    fresh.encode_labels(NAMES, TWO_TEMPLATES[:1])
    assert len(cached_files()) == 4

    # ... and the checkpoint's content, not its path.
    copy = str(tmp_path / 'copy.pt')
    shutil.copy(ckpt['pt'], copy)
    moved = _teacher(copy, cache_dir=cache_dir)
    with _count_text_encoder(moved) as encoder:
        moved.encode_labels(NAMES, TWO_TEMPLATES)
        assert encoder.call_count == 0
    changed = str(tmp_path / 'changed.pt')
    state_dict = tiny_clip.state_dict()
    state_dict['ln_final.bias'] = state_dict['ln_final.bias'] + 0.1
    torch.save(state_dict, changed)
    _teacher(changed, cache_dir=cache_dir).encode_labels(NAMES, TWO_TEMPLATES)
    assert len(cached_files()) == 5
    assert not any(n.startswith('.tmp-') for n in cached_files())


def test_stored_label_embeds(ckpt, tmp_path):
    """Embeddings given to store_label_embeds (e.g. a released model's) are
    served as given, from memory and from the disk cache, for that order of
    names and those templates only."""
    given = torch.randn(3, 16) * 3
    teacher = _teacher(ckpt['pt'])
    assert teacher.store_label_embeds(NAMES, given, TWO_TEMPLATES) is None
    with _count_text_encoder(teacher) as encoder:
        assert torch.equal(teacher.encode_labels(NAMES, TWO_TEMPLATES), given)
        assert encoder.call_count == 0
    cache_dir = str(tmp_path / 'cache')
    writer = _teacher(ckpt['pt'], cache_dir=cache_dir)
    path = writer.store_label_embeds(NAMES, given, TWO_TEMPLATES,
                                     metadata=dict(source='released'))
    assert os.listdir(cache_dir) == [os.path.basename(path)]
    assert path == writer.cache.path(
        writer.label_cache_key(NAMES, list(TWO_TEMPLATES)))
    reader = _teacher(ckpt['pt'], cache_dir=cache_dir)
    with _count_text_encoder(reader) as encoder:
        assert torch.equal(reader.encode_labels(NAMES, TWO_TEMPLATES), given)
        assert encoder.call_count == 0
        reader.encode_labels(NAMES[::-1], TWO_TEMPLATES)
        assert encoder.call_count > 0
    with pytest.raises(ValueError, match=r'shape \(3, 16\)'):
        writer.store_label_embeds(NAMES, given[:, :8])


def test_corrupt_disk_cache_is_recomputed(ckpt, tmp_path):
    cache_dir = str(tmp_path / 'cache')
    first = _teacher(
        ckpt['pt'], cache_dir=cache_dir).encode_labels(NAMES, TWO_TEMPLATES)
    (name, ) = os.listdir(cache_dir)
    path = os.path.join(cache_dir, name)
    with open(path, 'wb') as f:
        f.write(b'garbage')

    teacher = _teacher(ckpt['pt'], cache_dir=cache_dir)
    logger = clip_teacher_module.MMLogger.get_current_instance()
    with _count_text_encoder(teacher) as encoder, \
            mock.patch.object(logger, 'warning') as warning:
        embeds = teacher.encode_labels(NAMES, TWO_TEMPLATES)
        assert encoder.call_count > 0
    warning.assert_called_once()
    assert path in warning.call_args[0][0]
    torch.testing.assert_close(embeds, first)
    # The entry was rewritten and is a valid hit again.
    again = _teacher(ckpt['pt'], cache_dir=cache_dir)
    with _count_text_encoder(again) as encoder:
        torch.testing.assert_close(
            again.encode_labels(NAMES, TWO_TEMPLATES), first)
        assert encoder.call_count == 0


def test_edited_cache_rows_are_recomputed_not_served(ckpt, tmp_path):
    """Rows of a label-cache file reversed in place (its header kept) would
    swap the names' embeddings: the content hash finds the edit, the teacher
    warns with the file and encodes the names again."""
    from safetensors import safe_open
    from safetensors.torch import save_file
    cache_dir = str(tmp_path / 'cache')
    first = _teacher(
        ckpt['pt'], cache_dir=cache_dir).encode_labels(NAMES, TWO_TEMPLATES)
    (name, ) = os.listdir(cache_dir)
    path = os.path.join(cache_dir, name)
    with safe_open(path, framework='pt') as f:
        header, rows = f.metadata(), f.get_tensor('embeddings')
    save_file({'embeddings': rows.flip(0).contiguous()}, path, metadata=header)
    teacher = _teacher(ckpt['pt'], cache_dir=cache_dir)
    logger = clip_teacher_module.MMLogger.get_current_instance()
    with mock.patch.object(logger, 'warning') as warning:
        embeds = teacher.encode_labels(NAMES, TWO_TEMPLATES)
    assert path in warning.call_args[0][0]
    assert 'changed after it was written' in warning.call_args[0][0]
    torch.testing.assert_close(embeds, first)
    assert not torch.allclose(embeds, rows.flip(0))


def test_progress_bar_for_large_vocabularies(ckpt, capsys):
    teacher = _teacher(ckpt['pt'], batch_size=2, progress_threshold=4)
    teacher.encode_labels(NAMES[:2])  # 2 prompts: quiet
    assert '2/2' not in capsys.readouterr().out
    teacher.encode_labels(NAMES, TWO_TEMPLATES)  # 6 prompts
    assert '6/6' in capsys.readouterr().out


def test_names_cut_by_the_context_are_named(ckpt):
    """Names equal in the tokens CLIP reads get a warning that names them
    (their embeddings are then equal, as the warning says); short names
    none."""
    teacher = _teacher(ckpt['pt'])
    context = teacher.tokenizer(['x']).shape[1]
    stem = ' '.join(['striped'] * context)
    long_a, long_b = stem + ' cat', stem + ' dog'
    logger = clip_teacher_module.MMLogger.get_current_instance()
    with mock.patch.object(logger, 'warning') as warning:
        teacher.encode_labels(NAMES)
    warning.assert_not_called()
    with mock.patch.object(logger, 'warning') as warning:
        embeds = teacher.encode_labels(['cat', long_a, long_b])
    message = warning.call_args[0][0]
    assert long_a in message and long_b in message and 'equal' in message
    torch.testing.assert_close(embeds[1], embeds[2])
