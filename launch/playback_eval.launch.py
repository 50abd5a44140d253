"""
Evaluate rcdepth_node on a played bag: player (with /clock) + node + evaluator, all on sim time.

    ros2 launch rcdepth_ros playback_eval.launch.py bag:=out/demo/bag model_path:=... \
        extrinsics_file:=out/demo/extrinsics.yaml report:=out/eval.json

The bag is played by ``rcdepth play`` (``ros2 bag play --clock`` works as well on a full ROS 2 install). The
extrinsics file gives both nodes the sensor mounting as parameters (``rcdepth demo`` writes one; with tf2 the
bag's ``/tf_static`` serves instead). The evaluator writes ``report`` when the launch is stopped (Ctrl-C).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

ARGUMENTS = (
    ('bag', '', 'rosbag2 directory to play (rcdepth make-bag layout)'),
    ('rate', '1.0', 'playback rate'),
    ('params_file', PathJoinSubstitution([FindPackageShare('rcdepth_ros'), 'config', 'rcdepth.yaml']),
     'parameters file of both nodes'),
    ('extrinsics_file', PathJoinSubstitution([FindPackageShare('rcdepth_ros'), 'config', 'rcdepth.yaml']),
     'parameters file with the extrinsics.* parameters of both nodes'),
    ('model_path', '', 'checkpoint; empty: the bundled demo model (trained on synthetic scenes only, a demo)'),
    ('refine', 'none', 'radar: refine the depth with the radar returns (docs/refinement.md); none: off'),
    ('report', 'rcdepth_eval.json', 'JSON report of the evaluator'),
    ('use_sim_time', 'true', 'run the nodes on the bag time (/clock from the player)'),
)


def generate_launch_description():
    """Return the launch description: the arguments, the player, the depth node and the evaluator."""
    arguments = [DeclareLaunchArgument(name, default_value=default, description=text)
                 for name, default, text in ARGUMENTS]
    sim_time = ParameterValue(LaunchConfiguration('use_sim_time'), value_type=bool)
    params = [LaunchConfiguration('params_file'), LaunchConfiguration('extrinsics_file')]
    depth = Node(
        package='rcdepth_ros', executable='rcdepth_node', name='rcdepth_node', output='screen',
        parameters=params + [{'model_path': ParameterValue(LaunchConfiguration('model_path'), value_type=str),
                              'refine': ParameterValue(LaunchConfiguration('refine'), value_type=str),
                              'use_sim_time': sim_time, 'radar_topics': ['/radar/points']}],
        remappings=[('image', '/camera/image'), ('image/compressed', '/camera/image/compressed'),
                    ('camera_info', '/camera/camera_info')])
    evaluator = Node(
        package='rcdepth_ros', executable='rcdepth_eval_node', name='rcdepth_eval_node', output='screen',
        parameters=params + [{'output': ParameterValue(LaunchConfiguration('report'), value_type=str),
                              'use_sim_time': sim_time}],
        remappings=[('lidar/points', '/lidar/points')])
    player = Node(
        package='rcdepth_ros', executable='rcdepth', name='rcdepth_player', output='screen',
        arguments=['play', LaunchConfiguration('bag'), '--clock', '--rate', LaunchConfiguration('rate'),
                   '--wait-for', '/camera/image', '/lidar/points'])
    return LaunchDescription(arguments + [depth, evaluator, player])
