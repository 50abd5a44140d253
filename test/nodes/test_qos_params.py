"""QoS from strings, the parameter table (descriptors, ranges, validation) and extrinsics from parameters."""

import numpy as np
import pytest

from rcdepth_ros.core.geometry.transforms import transform_from_translation_quaternion
from rcdepth_ros.errors import ConfigError
from rcdepth_ros.nodes import params
from rcdepth_ros.nodes.qos import describe_qos, qos_from_string, QOS_NAMES


def test_every_qos_name_resolves_and_depth_overrides():
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, ReliabilityPolicy
    for name in QOS_NAMES:
        assert describe_qos(qos_from_string(name))
    sensor = qos_from_string('sensor_data')
    assert sensor.reliability == ReliabilityPolicy.BEST_EFFORT and sensor.depth == 5
    latched = qos_from_string('transient_local')
    assert latched.durability == DurabilityPolicy.TRANSIENT_LOCAL and latched.reliability == ReliabilityPolicy.RELIABLE
    reliable = qos_from_string(' Reliable ', depth=1)
    assert reliable.history == HistoryPolicy.KEEP_LAST and reliable.depth == 1
    assert describe_qos(reliable) == 'reliable, volatile, keep_last 1'
    assert qos_from_string('sensor_data') is not qos_from_string('sensor_data')     # never the shared profile
    with pytest.raises(ConfigError, match='fastest.*sensor_data'):
        qos_from_string('fastest')
    with pytest.raises(ConfigError, match='depth'):
        qos_from_string('reliable', 0)


def test_descriptors_carry_ranges_read_only_and_choices():
    slop = params.descriptor(params.BY_NAME['slop'])
    assert slop.floating_point_range[0].from_value == 0.0 and slop.floating_point_range[0].to_value == 5.0
    queue = params.descriptor(params.BY_NAME['queue_size'])
    assert queue.integer_range[0].from_value == 1
    # the model is read at configure: settable while unconfigured (the node refuses it later), so not read_only
    for name in ('device', 'model_path'):
        assert name in params.AT_CONFIGURE and not params.descriptor(params.BY_NAME[name]).read_only
        assert 'unconfigured' in params.descriptor(params.BY_NAME[name]).description
    assert 'sensor_data' in params.descriptor(params.BY_NAME['qos.input']).additional_constraints
    assert all(spec.description for spec in params.SPECS)
    assert 'radar.window' in params.LIVE and 'slop' not in params.LIVE


def test_validate_names_the_parameter():
    assert params.validate({'qos.output': 'reliable', 'radar_topics': ['a', 'b']}) is None
    assert 'qos.output' in params.validate({'qos.output': 'loud'})
    assert 'duplicate' in params.validate({'radar_topics': ['a', 'a']})
    assert 'radar.fields.z' in params.validate({'radar.fields.z': ' '})
    assert 'color_max' in params.validate_color_range(10.0, 5.0)
    assert params.field_map_values({f'radar.fields.{r}': v for r, v in [
        ('x', 'X'), ('y', 'Y'), ('z', 'Z'), ('rcs', 'auto'), ('v_radial', 'none'), ('vx', 'vx_comp'),
        ('vy', 'vy_comp')]}) == {'x': 'X', 'y': 'Y', 'z': 'Z', 'rcs': None, 'v_radial': '', 'vx': 'vx_comp',
                                 'vy': 'vy_comp'}


def test_extrinsics_from_parameters(ros_context):
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    T = transform_from_translation_quaternion((1.0, -0.5, 0.2), (0.1, 0.2, 0.3, 0.9))
    overrides = params.extrinsics_overrides({'radar': T}, 'cam')
    overrides['extrinsics.frames'] = ['radar', 'lidar']
    overrides['extrinsics.lidar.translation'] = [0.0, 0.0, 1.0]
    overrides['extrinsics.lidar.rotation'] = [0.0, 0.0, 0.0, 1.0]
    node = Node('extrinsics_test', context=ros_context,
                parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
    try:
        for spec in params.SPECS:
            if spec.name.startswith('extrinsics.'):
                node.declare_parameter(spec.name, spec.default, params.descriptor(spec))
        transforms = params.extrinsics_from_parameters(node)
        assert np.allclose(transforms['radar'], T)
        assert np.allclose(transforms['lidar'][:3, 3], [0, 0, 1])
        assert np.allclose(transforms['lidar'][:3, :3], np.eye(3))
    finally:
        node.destroy_node()
    bad = Node('extrinsics_bad', context=ros_context, parameter_overrides=[
        Parameter('extrinsics.frames', value=['radar']), Parameter('extrinsics.radar.matrix', value=[1.0] * 12)])
    try:
        bad.declare_parameter('extrinsics.frames', [''])
        with pytest.raises(ConfigError, match='16 numbers'):
            params.extrinsics_from_parameters(bad)
    finally:
        bad.destroy_node()
