"""The import graph flows one way (docs/architecture.md): no module imports a layer below its own."""

import ast

import pytest

from rcdepth_ros.paths import SOURCE_ROOT

# Lower layers first; a module may import its own layer and the ones before it.
LAYERS = (
    ('rcdepth_ros.errors', 'rcdepth_ros.config', 'rcdepth_ros.paths', 'rcdepth_ros.ros_env'),
    ('rcdepth_ros.models',),
    ('rcdepth_ros.core',),
    ('rcdepth_ros.data',),
    ('rcdepth_ros.evaluation',),
    ('rcdepth_ros.commands', 'rcdepth_ros.nodes', 'rcdepth_ros.cli'),
    ('training',),
)
ROS_CLIENT = ('rclpy', 'rcl_interfaces', 'launch', 'launch_ros', 'message_filters', 'tf2_ros')


def _layer(module):
    for index, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + '.') for p in prefixes):
            return index
    return None


def _modules():
    for folder in ('rcdepth_ros', 'training'):
        for path in sorted((SOURCE_ROOT / folder).rglob('*.py')):
            name = '.'.join(path.relative_to(SOURCE_ROOT).with_suffix('').parts)
            yield name.removesuffix('.__init__'), ast.parse(path.read_text(), str(path))


def _imports(tree):
    """Yield (imported module, top level?) for every import statement of a module."""
    top = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, id(node) in top
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module, id(node) in top


MODULES = list(_modules())


@pytest.mark.parametrize('name,tree', MODULES, ids=[name for name, _ in MODULES])
def test_no_module_imports_a_lower_layer(name, tree):
    own = _layer(name)
    if own is None:
        return                                   # the package's own __init__
    upward = sorted({m for m, _ in _imports(tree) if (_layer(m) or 0) > own})
    assert not upward, f'{name} (layer {own}) imports {upward} from a later layer'


@pytest.mark.parametrize('name,tree', MODULES, ids=[name for name, _ in MODULES])
def test_only_the_nodes_import_the_ros_client_at_module_level(name, tree):
    if name.startswith('rcdepth_ros.nodes'):
        return
    at_top = sorted({m for m, top in _imports(tree) if top and m.split('.')[0] in ROS_CLIENT})
    assert not at_top, f'{name} imports {at_top} at module level; only rcdepth_ros.nodes may'


def test_test_files_have_unique_names():
    # pytest imports test files by basename (no __init__.py in test/): two of the same name stop the collection
    names = {}
    for path in sorted((SOURCE_ROOT / 'test').rglob('test_*.py')):
        names.setdefault(path.name, []).append(str(path.relative_to(SOURCE_ROOT)))
    assert not {name: paths for name, paths in names.items() if len(paths) > 1}
