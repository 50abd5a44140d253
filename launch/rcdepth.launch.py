"""
Launch rcdepth_node: namespace, parameters file, model, topic remappings and sim time as launch arguments.

    ros2 launch rcdepth_ros rcdepth.launch.py model_path:=/path/model.safetensors \
        image:=/camera/image camera_info:=/camera/camera_info radar:=/radar/points refine:=radar

The node configures and activates itself (its main() does), so a plain Node action is enough; a lifecycle
manager can still drive it through its lifecycle services.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

ARGUMENTS = (
    ('namespace', '', 'namespace of the node and its relative topics'),
    ('params_file', PathJoinSubstitution([FindPackageShare('rcdepth_ros'), 'config', 'rcdepth.yaml']),
     'parameters file (config/rcdepth.yaml)'),
    ('model_path', '', 'checkpoint; empty: the bundled demo model (trained on synthetic scenes only, a demo)'),
    ('device', 'auto', 'auto, cpu, cuda or cuda:N'),
    ('refine', 'none', 'radar: refine the depth with the radar returns (docs/refinement.md); none: off'),
    ('use_sim_time', 'false', 'use /clock (bag playback with --clock)'),
    ('image', '/camera/image', 'image topic (the compressed one is <image>/compressed)'),
    ('camera_info', '/camera/camera_info', 'camera_info topic'),
    ('radar', '/radar/points', 'first radar PointCloud2 topic (more: radar_topics in the parameters file)'),
    ('log_level', 'info', 'log level of the node'),
)


def generate_launch_description():
    """Return the launch description: the arguments and the node."""
    arguments = [DeclareLaunchArgument(name, default_value=default, description=text)
                 for name, default, text in ARGUMENTS]
    image = LaunchConfiguration('image')
    node = Node(
        package='rcdepth_ros', executable='rcdepth_node', name='rcdepth_node',
        namespace=LaunchConfiguration('namespace'), output='screen', emulate_tty=True,
        parameters=[LaunchConfiguration('params_file'),
                    {'model_path': ParameterValue(LaunchConfiguration('model_path'), value_type=str),
                     'device': ParameterValue(LaunchConfiguration('device'), value_type=str),
                     'refine': ParameterValue(LaunchConfiguration('refine'), value_type=str),
                     'use_sim_time': ParameterValue(LaunchConfiguration('use_sim_time'), value_type=bool)}],
        remappings=[('image', image), ('image/compressed', [image, '/compressed']),
                    ('camera_info', LaunchConfiguration('camera_info')),
                    ('radar/points', LaunchConfiguration('radar'))],
        arguments=['--ros-args', '--log-level', LaunchConfiguration('log_level')])
    return LaunchDescription(arguments + [node])
