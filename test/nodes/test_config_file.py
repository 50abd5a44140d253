"""config/rcdepth.yaml: every declared parameter with its default, and rcl's parser accepts the file."""

from pathlib import Path

import pytest

from rcdepth_ros.nodes import eval_node, params
import yaml

CONFIG = Path(__file__).resolve().parents[2] / 'config' / 'rcdepth.yaml'


def _section(name):
    return yaml.safe_load(CONFIG.read_text())[f'/**/{name}']['ros__parameters']


@pytest.mark.parametrize('name, specs', [('rcdepth_node', params.SPECS), ('rcdepth_eval_node', eval_node.SPECS)])
def test_config_lists_every_parameter_with_its_default(name, specs):
    section = _section(name)
    assert set(section) == {spec.name for spec in specs}
    for spec in specs:
        assert section[spec.name] == spec.default, spec.name


def test_rcl_reads_the_file_for_a_namespaced_node(ros_context):
    from rcdepth_ros.nodes.depth_node import DepthNode
    node = DepthNode(namespace='/somewhere', context=ros_context,
                     cli_args=['--ros-args', '--params-file', str(CONFIG), '-p', 'slop:=0.07'])
    try:
        assert node.get_parameter('slop').value == 0.07              # command line wins over the file
        assert node.get_parameter('radar_topics').value == ['radar/points']
        assert node.get_parameter('qos.input').value == 'sensor_data'
    finally:
        node.destroy_node()
