# Copyright (c) mmovl contributors. All rights reserved.
"""tools/model_converters/mkt_to_mmovl.py: checkpoints in the layout of the
MKT authors' stage-1 model (github sunanhe/MKT, ``models/clip_vit.py``) with
random values, converted, loaded into mmovl's MKT and scored; the reference
is the authors' forward pass written out below in plain torch."""
import importlib.util
import os.path as osp
import pathlib
import re

import open_clip
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

import mmovl  # noqa: F401
from mmovl.datasets import CocoMultiLabelDataset
from mmovl.models import MKT
from mmovl.utils import safe_torch_load

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

pytestmark = pytest.mark.usefixtures('one_thread')

_spec = importlib.util.spec_from_file_location(
    'mkt_to_mmovl', osp.join(REPO, 'tools', 'model_converters',
                             'mkt_to_mmovl.py'))
conv = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(conv)

# A tiny CLIP with QuickGELU, as OpenAI's: 2 blocks of width 128 (2 heads of
# 64, as CLIP's ViTs), 8x8 patches of 32x32 images (16 patches), 32-d.
TINY_NAME = 'mmovl-test-mkt-converter'
TINY_CFG = dict(
    embed_dim=32,
    quick_gelu=True,
    vision_cfg=dict(image_size=32, layers=2, width=128, patch_size=8),
    text_cfg=dict(context_length=16, vocab_size=49408, width=32, heads=1,
                  layers=1))
TINY_TOPK = 4


def their_stage1_state(width, layers, patch, image, embed_dim, seed=0):
    """A stage-1 state dict in the authors' names and shapes: CLIPVIT's
    conv1, class / positional embeddings, ln_pre, the blocks of CLIP's
    Transformer, ln_post, their unused MLP ``projection`` (built with
    ``embed_dim=768`` whatever the width) and ``projection_dist``."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, std=0.02, mean=0.0):
        return torch.randn(*shape, generator=g) * std + mean

    grid = image // patch
    state = {
        'conv1.weight': rnd(width, 3, patch, patch),
        'class_embedding': rnd(width, std=0.1),
        'positional_embedding': rnd(grid * grid + 1, width, std=0.1),
        'ln_pre.weight': rnd(width, std=0.1, mean=1.0),
        'ln_pre.bias': rnd(width),
    }
    for i in range(layers):
        p = f'transformer.resblocks.{i}.'
        state.update({
            p + 'attn.in_proj_weight': rnd(3 * width, width),
            p + 'attn.in_proj_bias': rnd(3 * width),
            p + 'attn.out_proj.weight': rnd(width, width),
            p + 'attn.out_proj.bias': rnd(width),
            p + 'ln_1.weight': rnd(width, std=0.1, mean=1.0),
            p + 'ln_1.bias': rnd(width),
            p + 'mlp.c_fc.weight': rnd(4 * width, width),
            p + 'mlp.c_fc.bias': rnd(4 * width),
            p + 'mlp.c_proj.weight': rnd(width, 4 * width),
            p + 'mlp.c_proj.bias': rnd(width),
            p + 'ln_2.weight': rnd(width, std=0.1, mean=1.0),
            p + 'ln_2.bias': rnd(width),
        })
    state.update({
        'ln_post.weight': rnd(width, std=0.1, mean=1.0),
        'ln_post.bias': rnd(width),
        'projection.fc1.weight': rnd(512, 768),
        'projection.fc1.bias': rnd(512),
        'projection.fc2.weight': rnd(512, 512),
        'projection.fc2.bias': rnd(512),
        'projection_dist': rnd(width, embed_dim, std=width**-0.5),
    })
    return state


def their_scores(sd, images, label_emb, topk):
    """CLIPVIT.forward of the authors' code, by hand: patch embedding, class
    and positional embeddings, ln_pre, pre-norm blocks (heads of width 64,
    QuickGELU), ln_post; CLS and patches through projection_dist; global
    and top-k local scores against the raw label embeddings, each
    L2-normalised across the labels, averaged."""
    weight = sd['conv1.weight']
    width, patch = weight.shape[0], weight.shape[-1]
    heads, head_dim = width // 64, 64

    def ln(x, name):
        return F.layer_norm(x, (width, ), sd[name + '.weight'],
                            sd[name + '.bias'], eps=1e-5)

    x = F.conv2d(images, weight, stride=patch)  # (B, W, g, g), no bias
    x = x.flatten(2).transpose(1, 2)
    cls = sd['class_embedding'].expand(x.shape[0], 1, width)
    x = torch.cat([cls, x], dim=1) + sd['positional_embedding']
    x = ln(x, 'ln_pre')
    b, length = x.shape[:2]
    layers = 1 + max(
        int(k.split('.')[2]) for k in sd if k.startswith('transformer.'))
    for i in range(layers):
        p = f'transformer.resblocks.{i}.'
        h = ln(x, p + 'ln_1')
        qkv = h @ sd[p + 'attn.in_proj_weight'].t() + \
            sd[p + 'attn.in_proj_bias']
        q, k, v = (t.reshape(b, length, heads, head_dim).transpose(1, 2)
                   for t in qkv.chunk(3, dim=-1))
        attn = torch.softmax(q @ k.transpose(-1, -2) / head_dim**0.5, dim=-1)
        h = (attn @ v).transpose(1, 2).reshape(b, length, width)
        x = x + h @ sd[p + 'attn.out_proj.weight'].t() + \
            sd[p + 'attn.out_proj.bias']
        h = ln(x, p + 'ln_2')
        h = h @ sd[p + 'mlp.c_fc.weight'].t() + sd[p + 'mlp.c_fc.bias']
        h = h * torch.sigmoid(1.702 * h)  # QuickGELU
        x = x + h @ sd[p + 'mlp.c_proj.weight'].t() + sd[p + 'mlp.c_proj.bias']
    x = ln(x, 'ln_post')
    proj = sd['projection_dist']
    dist_feat, pred_feat = x[:, 0] @ proj, x[:, 1:] @ proj
    local = (pred_feat @ label_emb.t()).topk(topk, dim=1)[0].mean(dim=1)
    glob = dist_feat @ label_emb.t()
    local = local / local.norm(dim=-1, keepdim=True)
    glob = glob / glob.norm(dim=-1, keepdim=True)
    return (local + glob) / 2


def their_text_features(sd, original_table, names, tokenizer):
    """PromptLearner.forward of the authors' stage 2 as their evaluation
    runs it, by hand: the prompt's token embeddings from the trained table,
    the name's (positions 4 to 4 + its length) from the table before
    training, positional embeddings, the causal pre-norm transformer
    (QuickGELU, heads of width 64, or one head if narrower), ln_final, the
    end token's feature through text_projection; not normalised."""
    tokens = tokenizer([f'There is a {n} in the scene' for n in names])
    x = sd['token_embedding.weight'][tokens].clone()
    for i, name in enumerate(names):
        n = len(tokenizer.encode(name))
        x[i, 4:4 + n] = original_table[tokens[i, 4:4 + n]]
    x = x + sd['positional_embedding']
    b, length, width = x.shape
    heads = max(width // 64, 1)
    head_dim = width // heads
    mask = torch.full((length, length), float('-inf')).triu(1)

    def ln(x, name):
        return F.layer_norm(x, (width, ), sd[name + '.weight'],
                            sd[name + '.bias'], eps=1e-5)

    layers = 1 + max(
        int(k.split('.')[2]) for k in sd if k.startswith('transformer.'))
    for i in range(layers):
        p = f'transformer.resblocks.{i}.'
        h = ln(x, p + 'ln_1')
        qkv = h @ sd[p + 'attn.in_proj_weight'].t() + \
            sd[p + 'attn.in_proj_bias']
        q, k, v = (t.reshape(b, length, heads, head_dim).transpose(1, 2)
                   for t in qkv.chunk(3, dim=-1))
        logits = q @ k.transpose(-1, -2) / head_dim**0.5 + mask
        h = (torch.softmax(logits, dim=-1) @ v).transpose(1, 2).reshape(
            b, length, width)
        x = x + h @ sd[p + 'attn.out_proj.weight'].t() + \
            sd[p + 'attn.out_proj.bias']
        h = ln(x, p + 'ln_2')
        h = h @ sd[p + 'mlp.c_fc.weight'].t() + sd[p + 'mlp.c_fc.bias']
        h = h * torch.sigmoid(1.702 * h)
        x = x + h @ sd[p + 'mlp.c_proj.weight'].t() + sd[p + 'mlp.c_proj.bias']
    x = ln(x, 'ln_final')
    return x[torch.arange(b), tokens.argmax(dim=-1)] @ sd['text_projection']


@pytest.fixture(scope='module')
def released(tmp_path_factory, tiny_world):
    """The tiny CLIP's weights, an MKT config on it with the toy world as
    test set, and the authors' files: stage-1 checkpoint, label_emb.pt with
    rows of unequal norms, Concepts925/81-like names files (seen, then
    unseen: the toy world's own order interleaves them)."""
    root = tmp_path_factory.mktemp('mkt_converter')
    torch.manual_seed(0)
    from mmovl.models.teachers.clip_teacher import register_open_clip_config
    register_open_clip_config(TINY_NAME, TINY_CFG)
    clip_path = str(root / 'tiny_clip.safetensors')
    clip = open_clip.create_model(TINY_NAME)
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()},
              clip_path)
    config = root / 'mkt_tiny.py'
    config.write_text(f'''
clip = dict(model_name={TINY_NAME!r}, model_cfg={TINY_CFG!r},
            checkpoint={clip_path!r})
model = dict(
    type='MKT',
    backbone=dict(type='OpenCLIPViT', **clip),
    head=dict(type='TwoStreamHead', topk={TINY_TOPK}, normalize_embeds=False),
    teacher=dict(type='CLIPTeacher', cache_dir={str(root / 'own_cache')!r},
                 **clip))
test_dataloader = dict(dataset=dict(
    type='CocoMultiLabelDataset', data_root={tiny_world!r},
    ann_file='annotations/instances_val.json', data_prefix='val',
    unseen_file='annotations/unseen_labels.txt', label_split='all'))
''')
    state = their_stage1_state(128, 2, 8, 32, 32, seed=1)
    src = str(root / 'first_stage.pth')
    torch.save(state, src)
    toy = CocoMultiLabelDataset(
        data_root=tiny_world, ann_file='annotations/instances_val.json',
        data_prefix='val', unseen_file='annotations/unseen_labels.txt',
        label_split='all', lazy_init=False).metainfo
    seen, unseen = list(toy['seen_classes']), list(toy['unseen_classes'])
    assert list(toy['classes']) != seen + unseen
    (root / 'Concepts925.txt').write_text('\n'.join(seen) + '\n')
    (root / 'Concepts81.txt').write_text('\n'.join(unseen) + '\n\n')
    g = torch.Generator().manual_seed(2)
    emb = torch.randn(30, 32, generator=g) * (
        0.5 + 2 * torch.rand(30, 1, generator=g))
    torch.save(emb, str(root / 'label_emb.pt'))
    # stage 2: their PromptLearner's state dict as DDP saves it; the frozen
    # text tower is CLIP's, the whole table decayed (AdamW) and the rows of
    # the prompt's non-name tokens trained
    tokenizer = open_clip.get_tokenizer(TINY_NAME)
    text = {
        k: v.clone()
        for k, v in clip.state_dict().items()
        if not k.startswith('visual.') and k not in ('logit_scale',
                                                     'attn_mask')
    }
    table = text['token_embedding.weight']
    original_table = table.clone()
    table.mul_(0.97)
    trained = tokenizer(['There is a  in the scene'])[0]
    trained = trained[trained > 0].unique()
    assert len(trained) == 8  # start, there, is, a, in, the, scene, end
    table[trained] += 0.05 * torch.randn(len(trained), table.shape[1],
                                         generator=g)
    src2 = str(root / 'second_stage.pth')
    torch.save({f'module.{k}': v for k, v in text.items()}, src2)
    config2 = root / 'mkt_tiny_prompt.py'
    config2.write_text('''
_base_ = ['./mkt_tiny.py']
model = dict(
    prompt_learner=dict(type='MKTPromptLearner',
                        init_template='There is a {} in the scene',
                        learn='all_but_name', normalize=False),
    freeze_student=True, distill_weight=0.0)
''')
    return dict(root=root, config=str(config), src=src, state=state,
                emb=emb, seen=seen, unseen=unseen, clip=clip_path,
                classes=list(toy['classes']),
                names_files=[str(root / 'Concepts925.txt'),
                             str(root / 'Concepts81.txt')],
                src2=src2, text=text, original_table=original_table,
                tokenizer=tokenizer, config2=str(config2))


@pytest.fixture
def converted_model():
    """``load(config, checkpoint, cache_dir)``: the config's MKT with the
    converted checkpoint's weights (strictly), in eval mode."""
    from mmengine.config import Config

    def load(config, checkpoint, cache_dir=None):
        model_cfg = Config.fromfile(config).model
        model_cfg.teacher.cache_dir = cache_dir
        model = MKT(**{k: v for k, v in model_cfg.items() if k != 'type'})
        ckpt = safe_torch_load(checkpoint, map_location='cpu')
        model.load_state_dict(ckpt['state_dict'], strict=True)
        return model.eval()

    return load


def test_converted_scores_equal_their_forward(released, converted_model,
                                              tmp_path):
    w = released
    root = w['root']
    dst = str(tmp_path / 'out' / 'mkt_released.pth')
    cache_dir = str(tmp_path / 'released_embeds')
    conv.main([
        w['src'], dst, '--config', w['config'], '--label-emb',
        str(root / 'label_emb.pt'), '--label-names', *w['names_files'],
        '--cache-dir', cache_dir
    ])
    ckpt = safe_torch_load(dst, map_location='cpu')
    assert ckpt['meta']['dropped_keys'] == sorted(
        k for k in w['state'] if k.startswith('projection.'))
    # the config's own cache is left alone
    assert not osp.exists(str(root / 'own_cache'))

    model = converted_model(w['config'], dst, cache_dir)

    images = torch.randn(3, 3, 32, 32, generator=torch.Generator()
                         .manual_seed(3))
    names = w['seen'] + w['unseen']
    # the test set's order (from the data), the ZSL and training ones
    for vocab in (w['classes'], w['unseen'], w['seen']):
        rows = torch.tensor([names.index(n) for n in vocab])
        model.set_vocabulary(vocab)
        # their rows, as released (not normalised), from the cache
        assert torch.equal(model.label_embeds(), w['emb'][rows])
        with torch.no_grad():
            ours = model(images, mode='tensor')
        ref = their_scores(w['state'], images, w['emb'][rows], TINY_TOPK)
        assert (ours - ref).abs().max().item() < 1e-5, vocab
    # the comparison can fail: with normalised rows (the teacher's own
    # convention) the scores already differ
    other = their_scores(w['state'], images, F.normalize(w['emb'][rows]),
                         TINY_TOPK)
    assert (ours - other).abs().max().item() > 1e-3


def test_real_vit_b16_layout(tmp_path):
    """Their ViT-B/16 checkpoint's names and shapes (random values) fit the
    backbone and head of configs/mkt/vit-b16_nuswide.py and score like
    their forward pass."""
    state = their_stage1_state(768, 12, 16, 224, 512, seed=4)
    assert len(state) == 5 + 12 * 12 + 2 + 4 + 1
    arch = conv.check_stage1(state, 'released.pth')
    assert arch == dict(width=768, layers=12, patch_size=16, grid=14,
                        embed_dim=512)
    converted, dropped = conv.convert_stage1(state)
    assert len(dropped) == 4
    cfg = conv.load_config(conv.DEFAULT_CONFIG)
    student = conv.build_student(cfg.model)
    assert conv.check_fits(student, converted, 'released.pth') == []
    student.eval()
    g = torch.Generator().manual_seed(5)
    images = torch.randn(1, 3, 224, 224, generator=g)
    emb = torch.randn(81, 512, generator=g)
    with torch.no_grad():
        ours = student.head(student.backbone(images), emb)
        ref = their_scores(state, images, emb, 16)
    diff = (ours - ref).abs().max().item()
    assert diff < 1e-5, diff


def test_stage2_scores_equal_their_forward(released, converted_model,
                                           tmp_path):
    w = released
    dst = str(tmp_path / 'released_prompt.pth')
    summary = conv.convert(w['src'], dst, config=w['config2'],
                           prompt_ckpt=w['src2'])
    assert summary['warnings'] == [] and summary['tower_max_diff'] == 0
    model = converted_model(w['config2'], dst)
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator()
                         .manual_seed(6))
    for vocab in (w['unseen'], w['seen'] + w['unseen']):
        model.set_vocabulary(vocab)
        with torch.no_grad():
            ours = model(images, mode='tensor')
            text = their_text_features(w['text'], w['original_table'], vocab,
                                       w['tokenizer'])
            ref = their_scores(w['state'], images, text, TINY_TOPK)
        assert (ours - ref).abs().max().item() < 1e-5, vocab
    # the comparison can fail: the prompt tokens' rows before training give
    # other scores
    untrained = dict(w['text'])
    untrained['token_embedding.weight'] = w['original_table']
    with torch.no_grad():
        text = their_text_features(untrained, w['original_table'], vocab,
                                   w['tokenizer'])
        other = their_scores(w['state'], images, text, TINY_TOPK)
    assert (ours - other).abs().max().item() > 1e-3

    # what cannot hold their stage 2 is refused
    with pytest.raises(conv.ConversionError, match='learn=all_but_name'):
        conv.convert(w['src'], dst, config=w['config2'],
                     prompt_ckpt=w['src2'],
                     cfg_options={'model.prompt_learner.learn': 'context'})
    with pytest.raises(conv.ConversionError, match='give the stage-1'):
        conv.convert(w['src2'], dst, config=w['config2'])
    with pytest.raises(conv.ConversionError, match='not a stage-2'):
        conv.convert(w['src'], dst, config=w['config2'],
                     prompt_ckpt=w['src'])
    with pytest.raises(conv.ConversionError, match='--prompt-ckpt'):
        conv.convert(w['src'], dst, config=w['config2'])


def _expect_refusal(released, tmp_path, src, pattern):
    dst = str(tmp_path / 'never.pth')
    with pytest.raises(conv.ConversionError, match=pattern) as e:
        conv.convert(src, dst, config=released['config'])
    assert src in str(e.value)
    assert not osp.exists(dst)
    return str(e.value)


def test_refuses_files_that_are_not_checkpoints(released, tmp_path):
    w = released
    # random tensors
    src = str(tmp_path / 'random.pth')
    torch.save({'weight': torch.randn(3, 3), 'bias': torch.randn(3)}, src)
    _expect_refusal(w, tmp_path, src, 'neither the stage-1')
    # not a torch file
    src = str(tmp_path / 'notes.pth')
    pathlib.Path(src).write_text('not a checkpoint')
    _expect_refusal(w, tmp_path, src, 'not a readable torch file')
    # a stage-2 (prompt learner) checkpoint
    src = str(tmp_path / 'second_stage.pth')
    torch.save({'module.token_embedding.weight': torch.randn(10, 4),
                'module.text_projection': torch.randn(4, 4)}, src)
    _expect_refusal(w, tmp_path, src, 'stage-2')
    # their layout with a block key missing, one unknown, one wrong shape
    state = dict(w['state'])
    del state['transformer.resblocks.1.mlp.c_fc.bias']
    state['transformer.resblocks.0.attn.extra'] = torch.zeros(1)
    state['ln_post.weight'] = torch.ones(129)
    src = str(tmp_path / 'broken.pth')
    torch.save({'model': state, 'epoch': 3}, src)
    msg = _expect_refusal(w, tmp_path, src, 'not a stage-1 MKT checkpoint')
    assert 'missing keys: transformer.resblocks.1.mlp.c_fc.bias' in msg
    assert 'unexpected keys: transformer.resblocks.0.attn.extra' in msg
    assert 'ln_post.weight (129,) (expected (128,))' in msg
    # their layout, but another width than the config's
    src = str(tmp_path / 'narrow.pth')
    torch.save(their_stage1_state(64, 2, 8, 32, 32), src)
    msg = _expect_refusal(w, tmp_path, src, "do not fit the config's")
    assert 'backbone.visual.conv1.weight (64, 3, 8, 8)' in msg


class _Payload:
    """Unpickling this creates a file: it must never happen."""

    def __init__(self, marker):
        self.marker = pathlib.Path(marker)

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker, ))


def test_refuses_pickled_code_without_running_it(released, tmp_path):
    marker = tmp_path / 'payload_ran'
    src = str(tmp_path / 'evil.pth')
    torch.save({'model': released['state'], 'x': _Payload(marker)}, src)
    msg = _expect_refusal(released, tmp_path, src,
                          re.escape('torch.load(weights_only=True)'))
    assert not marker.exists()
    assert 'Unsupported global' in msg  # what torch refused
    # the re-save snippet, for a trusted environment
    assert "weights_only=False)" in msg and 'torch.save(' in msg
    # a label embedding file is read the same way
    emb = str(tmp_path / 'label_emb.pt')
    torch.save(_Payload(marker), emb)
    with pytest.raises(conv.ConversionError, match='refused by torch.load'):
        conv.convert(
            released['src'], str(tmp_path / 'out.pth'),
            config=released['config'], label_emb=emb,
            label_names=released['names_files'][:1])
    assert not marker.exists()


def test_refuses_label_files_that_do_not_match(released, tmp_path):
    w = released
    root = w['root']
    names = w['names_files']
    dst = str(tmp_path / 'out.pth')
    kwargs = dict(config=w['config'], label_emb=str(root / 'label_emb.pt'),
                  cache_dir=str(tmp_path / 'cache'))
    with pytest.raises(conv.ConversionError, match='has 30 rows but'):
        conv.convert(w['src'], dst, label_names=names[:1], **kwargs)
    with pytest.raises(conv.ConversionError, match='go together'):
        conv.convert(w['src'], dst, config=w['config'],
                     label_emb=kwargs['label_emb'])
    # writing into the config's own cache would shadow CLIP's embeddings
    with pytest.raises(conv.ConversionError, match="config's own"):
        conv.convert(w['src'], dst, label_names=names,
                     **dict(kwargs, cache_dir=str(root / 'own_cache')))
    # a name of the test set that the names files do not have
    renamed = tmp_path / 'renamed.txt'
    renamed.write_text('\n'.join(['boat'] + w['seen'][1:]))
    with pytest.raises(conv.ConversionError,
                       match=f"not in the names files: {w['seen'][0]}"):
        conv.convert(w['src'], dst, label_names=[str(renamed), names[1]],
                     **kwargs)
    assert not osp.exists(dst)
