# Copyright (c) mmovl contributors. All rights reserved.
"""MKT end to end on a tiny toy world: the teacher-embedding cache tool,
stage 1 with tools/train.py, stage 2 (prompt tuning) from its checkpoint,
and tools/test.py on unseen + seen labels."""
import glob
import json
import os.path as osp

import pytest
import torch

import mmovl  # noqa: F401
from mmovl.datasets import CocoMultiLabelDataset
from mmovl.datasets.transforms import LoadTeacherEmbedding
from mmovl.embeds import load_teacher_embeds, save_teacher_embeds
from mmovl.models import CLIPTeacher
from mmovl.utils import safe_torch_load


STAGE1 = '''
from mmengine.config import read_base

with read_base():
    from mmovl.configs.mkt.mkt_toy_vit_p8_10e_toy import *

toy_teacher = {teacher!r}
model.backbone.checkpoint = toy_teacher
model.teacher.checkpoint = toy_teacher
for _loader in (train_dataloader, val_dataloader, test_dataloader):
    _loader.update(batch_size=16, num_workers=0, persistent_workers=False)
    _loader.dataset.data_root = {root!r}
train_cfg.update(max_epochs=2, val_interval=2)
param_scheduler[1].update(end=2)
'''

STAGE2 = '''
from mmengine.config import read_base

with read_base():
    from mmovl.configs.mkt.mkt_toy_vit_p8_prompt_5e_toy import *

toy_teacher = {teacher!r}
model.backbone.checkpoint = toy_teacher
model.teacher.checkpoint = toy_teacher
for _loader in (train_dataloader, val_dataloader, test_dataloader):
    _loader.update(batch_size=16, num_workers=0, persistent_workers=False)
    _loader.dataset.data_root = {root!r}
train_cfg.update(max_epochs=2, val_interval=2)
param_scheduler[1].update(end=2)
load_from = {stage1!r}
'''


def test_teacher_embedding_cache_tool(tmp_path, tiny_world, run_python,
                                      random_toy_teacher):
    teacher_path = random_toy_teacher
    out = str(tmp_path / 'embeds.safetensors')
    run_python([
        'tools/misc/cache_teacher_embeds.py', '--checkpoint', teacher_path,
        '--data-root', tiny_world, '--ann-file',
        'annotations/instances_val.json', '--img-prefix', 'val', '--out',
        out, '--num-workers', '0'
    ])
    index, embeds = load_teacher_embeds(out)
    ds = CocoMultiLabelDataset(
        data_root=tiny_world, ann_file='annotations/instances_val.json',
        data_prefix='val')
    assert len(index) == len(ds)
    # the transform serves what the teacher computes online, raw features
    teacher = CLIPTeacher('mmovl-toy-vit', checkpoint=teacher_path)
    load = LoadTeacherEmbedding(
        out, data_root=tiny_world,
        teacher=dict(model_name='mmovl-toy-vit', checkpoint=teacher_path))
    from mmcv.transforms import LoadImageFromFile
    for i in (0, len(ds) - 1):
        info = LoadImageFromFile()(dict(img_path=ds.get_data_info(i)
                                        ['img_path']))
        img = torch.from_numpy(info['img'][..., ::-1].copy()).permute(
            2, 0, 1)[None].float()
        mean = torch.tensor(teacher.mean).view(1, 3, 1, 1) * 255
        std = torch.tensor(teacher.std).view(1, 3, 1, 1) * 255
        online = teacher.encode_image((img - mean) / std, normalize=False)[0]
        cached = load(dict(img_path=info['img_path']))['teacher_embed']
        torch.testing.assert_close(cached, online, rtol=1e-4, atol=1e-5)


def test_teacher_embedding_cache_is_checked(tmp_path, tiny_world, run_python,
                                            random_toy_teacher):
    """A cache made by another CLIP, edited after it was written, or holding
    NaN is refused when first read, naming the file (and both teachers)."""
    from safetensors import safe_open
    from safetensors.torch import save_file
    out = str(tmp_path / 'embeds.safetensors')
    run_python(['tools/misc/cache_teacher_embeds.py', '--checkpoint',
                random_toy_teacher, '--data-root', tiny_world, '--ann-file',
                'annotations/instances_val.json', '--img-prefix', 'val',
                '--out', out, '--num-workers', '0'])
    ds = CocoMultiLabelDataset(
        data_root=tiny_world, ann_file='annotations/instances_val.json',
        data_prefix='val')
    sample = dict(img_path=ds.get_data_info(0)['img_path'])
    # Another teacher: same architecture, one weight changed.
    other = str(tmp_path / 'other.safetensors')
    from safetensors.torch import load_file
    state = load_file(random_toy_teacher)
    name = sorted(state)[0]
    state[name] = state[name] + 1
    save_file(state, other)
    load = LoadTeacherEmbedding(
        out, data_root=tiny_world,
        teacher=dict(model_name='mmovl-toy-vit', checkpoint=other))
    with pytest.raises(ValueError, match=r'made with weights = .*sha256:'
                       r'.*this run\'s teacher has weights') as info:
        load(dict(sample))
    assert out in str(info.value)
    # Without a teacher: served, with a warning that nothing was compared.
    with pytest.warns(UserWarning, match='not checked against'):
        LoadTeacherEmbedding(out, data_root=tiny_world)(dict(sample))

    with safe_open(out, framework='pt') as f:
        header, rows = f.metadata(), f.get_tensor('embeds')
    teacher = dict(model_name='mmovl-toy-vit', checkpoint=random_toy_teacher)
    edited = str(tmp_path / 'edited.safetensors')
    save_file({'embeds': rows.flip(0).contiguous()}, edited, metadata=header)
    with pytest.raises(ValueError, match=f'{edited}: its matrix was changed'):
        LoadTeacherEmbedding(edited, tiny_world, teacher)(dict(sample))
    nan = rows.clone()
    nan[0, 0] = float('nan')
    with pytest.raises(ValueError, match='NaN'):
        save_teacher_embeds(str(tmp_path / 'x.safetensors'),
                            [str(i) for i in range(len(nan))], nan)
    header = dict(header)
    header.pop('content_sha256')  # as an older or hand-made file
    poisoned = str(tmp_path / 'nan.safetensors')
    save_file({'embeds': nan}, poisoned, metadata=header)
    with pytest.raises(ValueError, match=f'{poisoned} holds NaN'):
        LoadTeacherEmbedding(poisoned, tiny_world, teacher)(dict(sample))


def test_stage1_then_prompt_tuning(tmp_path, tiny_world, run_python,
                                   random_toy_teacher):
    teacher_path = random_toy_teacher
    cfg1 = tmp_path / 'mkt_stage1.py'
    cfg1.write_text(STAGE1.format(teacher=teacher_path, root=tiny_world))
    work1 = str(tmp_path / 'stage1')
    proc = run_python(['tools/train.py', str(cfg1), '--work-dir', work1])
    log = proc.stdout + proc.stderr
    assert 'multi-label/zsl/mAP' in log and 'loss_distill' in log
    ckpt1 = osp.join(work1, 'epoch_2.pth')

    cfg2 = tmp_path / 'mkt_stage2.py'
    cfg2.write_text(
        STAGE2.format(teacher=teacher_path, root=tiny_world, stage1=ckpt1))
    work2 = str(tmp_path / 'stage2')
    run_python(['tools/train.py', str(cfg2), '--work-dir', work2])
    ckpt2 = osp.join(work2, 'epoch_2.pth')

    s1 = safe_torch_load(ckpt1)['state_dict']
    s2 = safe_torch_load(ckpt2)['state_dict']
    # only the prompt's context vectors were trained in stage 2
    assert [k for k in s2 if k not in s1] == ['prompt_learner.ctx']
    for key, value in s1.items():
        assert torch.equal(value, s2[key]), key
    assert not any(k.startswith('teacher') for k in s2)

    # the tuned model names unseen labels at test time
    test_dir = str(tmp_path / 'test')
    run_python(['tools/test.py', str(cfg2), ckpt2, '--work-dir', test_dir])
    metrics = json.load(open(sorted(glob.glob(
        osp.join(test_dir, '*', '*.json')))[-1]))
    for key in ('zsl/mAP', 'gzsl/mAP', 'gzsl/F1@3'):
        assert 0 <= metrics[f'multi-label/{key}'] <= 100
