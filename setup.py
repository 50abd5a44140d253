"""Build script for rcdepth_ros: an ament_python package that also installs with plain pip."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'rcdepth_ros'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(include=[PACKAGE, PACKAGE + '.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        ('share/' + PACKAGE + '/launch', glob('launch/*.launch.py')),
        ('share/' + PACKAGE + '/config', glob('config/*.yaml') + glob('config/*.xml')),
        ('share/' + PACKAGE + '/config/models', glob('config/models/*.yaml')),
        ('share/' + PACKAGE + '/weights',
         glob('weights/*.safetensors') + glob('weights/*.json') + glob('weights/*.md')),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='rcdepth_ros maintainers',
    maintainer_email='rcdepth@example.com',
    description='Radar-camera dense depth (XD-RCDepth student) for ROS 2, with training and evaluation tools.',
    license='Apache-2.0',
    tests_require=['pytest'],
    entry_points={
        'console_scripts': [
            'rcdepth = rcdepth_ros.cli:main',
            'rcdepth_node = rcdepth_ros.nodes.depth_node:main',
            'rcdepth_eval_node = rcdepth_ros.nodes.eval_node:main',
        ],
    },
)
