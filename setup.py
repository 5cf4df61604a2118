# Copyright (c) mmovl contributors. All rights reserved.
import os
import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def readme() -> str:
    with open(osp.join(HERE, 'README.md'), encoding='utf-8') as f:
        return f.read()


def get_version() -> str:
    scope: dict = {}
    with open(osp.join(HERE, 'mmovl', 'version.py'), encoding='utf-8') as f:
        exec(compile(f.read(), 'version.py', 'exec'), scope)
    return scope['__version__']


def parse_requirements(name: str) -> list:
    """Requirement lines of ``requirements/<name>``, following ``-r``."""
    reqs = []
    with open(osp.join(HERE, 'requirements', name), encoding='utf-8') as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if not line:
                continue
            if line.startswith('-r '):
                reqs += parse_requirements(osp.basename(line[3:].strip()))
            else:
                reqs.append(line)
    return reqs


def add_mim_extension() -> None:
    """Expose ``tools/`` in ``mmovl/.mim`` for OpenMMLab's ``mim`` (``mim
    train mmovl CONFIG``): a symlink for editable installs, a copy for wheels
    and sdists.

    The configs need no entry there: they live in the package
    (``mmovl/configs``), so that pure-Python configs of other projects can
    inherit them. A ``.mim/configs`` beside them would make every config
    appear twice to mim, which looks a config name up through the whole
    package (following links) and refuses a name it finds twice.
    """
    if 'develop' in sys.argv or any('editable' in a for a in sys.argv):
        mode = 'symlink'
    elif {'sdist', 'bdist_wheel', 'install', 'build', 'build_py'} & set(
            sys.argv):
        mode = 'copy'
    else:
        return
    mim_dir = osp.join(HERE, 'mmovl', '.mim')
    os.makedirs(mim_dir, exist_ok=True)
    for name in ('configs', 'tools'):  # configs: left by older versions
        dst = osp.join(mim_dir, name)
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
    src, dst = osp.join(HERE, 'tools'), osp.join(mim_dir, 'tools')
    if mode == 'symlink':
        os.symlink(osp.relpath(src, mim_dir), dst)
    else:
        shutil.copytree(src, dst)


if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='mmovl',
        version=get_version(),
        description='Open-vocabulary multi-label classification and '
        'detection for MMPretrain and MMDetection',
        long_description=readme(),
        long_description_content_type='text/markdown',
        license='Apache License 2.0',
        python_requires='>=3.9',
        packages=find_packages(exclude=('tests', 'tests.*', 'bench')),
        include_package_data=True,
        package_data={
            'mmovl': ['.mim/**/*', 'configs/**/*.py',
                      'models/utils/open_clip_configs/*.json']
        },
        install_requires=parse_requirements('runtime.txt') +
        parse_requirements('mminstall.txt'),
        extras_require={'tests': parse_requirements('tests.txt')},
        zip_safe=False)
