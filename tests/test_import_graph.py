# Copyright (c) mmovl contributors. All rights reserved.
"""mmovl's modules import one another without cycles.

The graph is read from the source with ``ast`` (nothing is imported): one
node per module under ``mmovl/`` (a package is its ``__init__.py``), one
edge per ``import`` / ``from ... import`` of another mmovl module, wherever
it stands (module level, in a function or a class). Relative imports are
resolved against the importing module's package. ``from pkg import name``
points at the module ``pkg.name`` if there is one, else at ``pkg``.
Importing ``a.b.c`` also runs the packages ``a`` and ``a.b``, so they are
edges too, except the importer's own ancestors: they are running already
when it runs (this leaves out ``mmovl/__init__.py``, which imports every
subpackage to register them). An import that names an ancestor (``from ..
import x``) is an edge like any other.
"""
import ast
import os
import os.path as osp
from typing import Dict, Iterable, List, Optional, Set

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
PACKAGE = 'mmovl'


def module_files(root: str, package: str = PACKAGE) -> Dict[str, str]:
    """``{dotted module name: file}`` of every .py file under ``root``
    (``.mim``, which links to the repository's tools, is skipped)."""
    files = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames
                             if not d.startswith('.') and d != '__pycache__')
        rel = osp.relpath(dirpath, root)
        parts = [package] + ([] if rel == '.' else rel.split(os.sep))
        for name in sorted(filenames):
            if not name.endswith('.py'):
                continue
            stem = name[:-3]
            dotted = '.'.join(parts if stem == '__init__' else parts + [stem])
            files[dotted] = osp.join(dirpath, name)
    return files


def _is_package(files: Dict[str, str], module: str) -> bool:
    return osp.basename(files[module]) == '__init__.py'


def _resolve_from(module: str, is_package: bool, level: int,
                  target: Optional[str]) -> str:
    """The absolute name ``from <level dots><target> import ...`` means in
    ``module``."""
    if level == 0:
        return target
    parts = module.split('.')
    if not is_package:
        parts = parts[:-1]
    if level - 1 > len(parts) - 1:
        raise ValueError(f'{module}: relative import beyond the top level')
    base = parts[:len(parts) - (level - 1)]
    return '.'.join(base + ([target] if target else []))


def _known_prefix(name: str, known: Iterable[str]) -> Optional[str]:
    """The longest prefix of dotted ``name`` that is a known module."""
    parts = name.split('.')
    for end in range(len(parts), 0, -1):
        prefix = '.'.join(parts[:end])
        if prefix in known:
            return prefix
    return None


def imports_of(module: str, source: str, is_package: bool,
               known: Set[str]) -> Set[str]:
    """The known modules that ``source`` (the text of ``module``) imports,
    at any depth of its syntax tree."""
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _known_prefix(alias.name, known)
                if target:
                    out.add(target)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_from(module, is_package, node.level, node.module)
            for alias in node.names:
                full = f'{base}.{alias.name}'
                target = full if full in known else _known_prefix(base, known)
                if target:
                    out.add(target)
    ancestors = {
        '.'.join(module.split('.')[:end])
        for end in range(1, module.count('.') + 1)
    }
    if is_package:
        ancestors.add(module)
    for target in list(out):
        parts = target.split('.')
        for end in range(1, len(parts)):
            parent = '.'.join(parts[:end])
            if parent in known and parent not in ancestors:
                out.add(parent)
    out.discard(module)
    return out


def build_import_graph(root: str, package: str = PACKAGE
                       ) -> Dict[str, Set[str]]:
    """``{module: modules it imports}`` for every module under ``root``."""
    files = module_files(root, package)
    known = set(files)
    graph = {}
    for module, path in files.items():
        with open(path, encoding='utf-8') as f:
            source = f.read()
        graph[module] = imports_of(module, source,
                                   _is_package(files, module), known)
    return graph


def strongly_connected(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Tarjan's strongly connected components (iterative), each sorted."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    on_stack: Set[str] = set()
    stack: List[str] = []
    comps = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    comp.append(member)
                    if member == node:
                        break
                comps.append(sorted(comp))
    return comps


def _shortest_cycle_through(graph: Dict[str, Set[str]], start: str,
                            members: Set[str]) -> List[str]:
    """The shortest path ``start -> ... -> start`` inside ``members``."""
    previous = {start: None}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(graph.get(node, ())):
                if child not in members:
                    continue
                if child == start:
                    path = [node]
                    while previous[path[-1]] is not None:
                        path.append(previous[path[-1]])
                    return path[::-1] + [start]
                if child not in previous:
                    previous[child] = node
                    nxt.append(child)
        frontier = nxt
    raise AssertionError(f'{start} is on no cycle')


def find_cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """One cycle per strongly connected component that has one (a component
    of two or more modules, or a module importing itself), as the list of
    modules ``[a, b, ..., a]``, starting at the component's first module."""
    cycles = []
    for comp in strongly_connected(graph):
        if len(comp) > 1 or comp[0] in graph.get(comp[0], ()):
            cycles.append(
                _shortest_cycle_through(graph, comp[0], set(comp)))
    return cycles


def format_cycles(cycles: List[List[str]]) -> str:
    return '\n'.join(' -> '.join(c) for c in cycles)


# The finder itself, on graphs small enough to check by hand.


@pytest.mark.parametrize('graph, expected', [
    ({'a': {'b'}, 'b': {'c'}, 'c': set()}, []),
    ({'a': {'b', 'c'}, 'b': {'d'}, 'c': {'d'}, 'd': set()}, []),
    ({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}, [['a', 'b', 'c', 'a']]),
    ({'a': {'a'}}, [['a', 'a']]),
    ({'x': {'a'}, 'a': {'b'}, 'b': {'a', 'c'}, 'c': {'d'}, 'd': {'c'}},
     [['c', 'd', 'c'], ['a', 'b', 'a']]),
])
def test_find_cycles_on_small_graphs(graph, expected):
    assert sorted(find_cycles(graph)) == sorted(expected)


def test_find_cycles_on_a_deep_chain():
    """Iterative, so a long chain does not hit the recursion limit."""
    n = 5000
    graph = {f'm{i}': {f'm{i + 1}'} for i in range(n)}
    graph[f'm{n}'] = set()
    assert find_cycles(graph) == []
    graph[f'm{n}'] = {'m0'}
    (cycle, ) = find_cycles(graph)
    assert len(cycle) == n + 2 and cycle[0] == cycle[-1]


def _write(root, rel, text=''):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_graph_of_a_synthetic_package_finds_its_cycle(tmp_path):
    """The datasets -> apis -> inferencers -> datasets cycle mmovl had, in
    miniature: a relative import, a package __init__ and an import inside a
    method, which counts like one at module level."""
    root = tmp_path / 'pkg'
    _write(root, '__init__.py', 'from . import apis, datasets\n')
    _write(root, 'datasets/__init__.py', 'from .transforms import T\n')
    _write(root, 'datasets/transforms.py',
           'class T:\n'
           '    def load(self):\n'
           '        from pkg.apis import load\n')
    _write(root, 'apis/__init__.py',
           'from .inferencers import I\n'
           'def load():\n    pass\n')
    _write(root, 'apis/inferencers.py',
           'import os\n'
           'from ..datasets import transforms\n'
           'from ..utils.fileio import atomic_write\n')
    _write(root, 'utils/__init__.py')
    _write(root, 'utils/fileio.py')
    graph = build_import_graph(str(root), 'pkg')
    assert graph['pkg'] == {'pkg.apis', 'pkg.datasets'}
    assert graph['pkg.datasets'] == {'pkg.datasets.transforms'}
    assert graph['pkg.datasets.transforms'] == {'pkg.apis'}
    assert graph['pkg.apis'] == {'pkg.apis.inferencers'}
    # `from ..datasets import transforms` names the module, and runs the
    # packages above it; `pkg` itself is running already
    assert graph['pkg.apis.inferencers'] == {
        'pkg.datasets', 'pkg.datasets.transforms', 'pkg.utils',
        'pkg.utils.fileio'
    }
    assert find_cycles(graph) == [[
        'pkg.apis', 'pkg.apis.inferencers', 'pkg.datasets.transforms',
        'pkg.apis'
    ]]
    # moving the loader out of apis breaks it
    _write(root, 'datasets/transforms.py',
           'class T:\n'
           '    def load(self):\n'
           '        from pkg.utils.fileio import load\n')
    assert find_cycles(build_import_graph(str(root), 'pkg')) == []


def test_a_cycle_through_a_parent_package(tmp_path):
    """``from pkg.b.y import f`` runs ``pkg/b/__init__.py`` first; a cycle
    only through it is found, an import of the importer's own package is
    none."""
    root = tmp_path / 'pkg'
    _write(root, '__init__.py', 'from . import a, b\n')
    _write(root, 'a/__init__.py', 'from .z import g\n')
    _write(root, 'a/x.py', 'def h():\n    from pkg.b.y import f\n')
    _write(root, 'a/z.py', 'from pkg.a.x import h\n')
    _write(root, 'b/__init__.py', 'from pkg.a import x\n')
    _write(root, 'b/y.py')
    graph = build_import_graph(str(root), 'pkg')
    assert graph['pkg.a.x'] == {'pkg.b', 'pkg.b.y'}
    assert graph['pkg.a.z'] == {'pkg.a.x'}
    assert graph['pkg.b'] == {'pkg.a', 'pkg.a.x'}
    assert find_cycles(graph) == [[
        'pkg.a', 'pkg.a.z', 'pkg.a.x', 'pkg.b', 'pkg.a'
    ]]
    # importing one's own package by name is an edge like any other
    _write(root, 'b/__init__.py')
    assert find_cycles(build_import_graph(str(root), 'pkg')) == []
    _write(root, 'a/z.py', 'from pkg.a.x import h\nfrom pkg.a import g\n')
    assert find_cycles(build_import_graph(str(root), 'pkg')) == [[
        'pkg.a', 'pkg.a.z', 'pkg.a'
    ]]


def test_relative_import_resolution():
    assert _resolve_from('a.b.c', False, 1, 'd') == 'a.b.d'
    assert _resolve_from('a.b.c', False, 2, None) == 'a'
    assert _resolve_from('a.b', True, 1, 'c') == 'a.b.c'
    assert _resolve_from('a.b', True, 2, 'c') == 'a.c'
    assert _resolve_from('a.b.c', False, 0, 'x.y') == 'x.y'
    with pytest.raises(ValueError):
        _resolve_from('a.b', False, 3, None)


# mmovl itself.


@pytest.fixture(scope='module')
def mmovl_graph():
    return build_import_graph(osp.join(REPO, PACKAGE))


def test_mmovl_graph_is_complete(mmovl_graph):
    """The graph holds the modules the checks below are about (so an empty
    or misread graph does not pass them)."""
    for module in ('mmovl', 'mmovl.apis', 'mmovl.datasets', 'mmovl.models',
                   'mmovl.utils.fileio'):
        assert module in mmovl_graph
    assert 'mmovl.datasets' in mmovl_graph['mmovl']


def test_mmovl_has_no_import_cycle(mmovl_graph):
    cycles = find_cycles(mmovl_graph)
    assert not cycles, 'import cycles among mmovl modules:\n' + \
        format_cycles(cycles)


@pytest.mark.parametrize('package', ['mmovl.datasets', 'mmovl.models'])
def test_datasets_and_models_do_not_import_apis(mmovl_graph, package):
    """apis/ holds the inferencers, which build models and data pipelines;
    the layers below them never reach up into it."""
    offenders = sorted(
        f'{module} imports {target}'
        for module, targets in mmovl_graph.items()
        if module == package or module.startswith(package + '.')
        for target in targets
        if target == 'mmovl.apis' or target.startswith('mmovl.apis.'))
    assert not offenders, '\n'.join(offenders)
