"""Build script for the edge_perception ament_python package (colcon and pip alike)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'edge_perception'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(include=[PACKAGE, f'{PACKAGE}.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml', 'plugin.xml']),
        (f'share/{PACKAGE}/launch', glob('launch/*.launch.py')),
        (f'share/{PACKAGE}/config', glob('config/*.yaml') + glob('config/*.xml')),
        (f'share/{PACKAGE}/msg', glob('msg/*.msg')),
        (f'share/{PACKAGE}/model_zoo', glob('model_zoo/*.json')),
        *[
            (f'share/{PACKAGE}/{model_dir.rstrip("/")}', glob(f'{model_dir}*.onnx'))
            for model_dir in sorted(glob('model_zoo/*/'))
        ],
        # Committed MetaSchedule databases: installed builds reuse them, never tune.
        *[
            (f'share/{PACKAGE}/{database.rstrip("/")}', glob(f'{database}*.json'))
            for database in sorted(glob('model_zoo/tuning/*/*/'))
        ],
    ],
    # ROS 2 provides rclpy & co. on real installs; the venv set-up installs them from
    # requirements/ (see scripts/bootstrap), so nothing but setuptools is required here.
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='edge_perception maintainers',
    maintainer_email='maintainers@edge-perception.dev',
    description='Deadline-monotonic multi-task perception with TVM models for ROS 2.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'edge-perception = edge_perception.cli:main',
            'perception_container = edge_perception.ros.container:main',
            'traffic_light_detector = edge_perception.ros.container:traffic_light_main',
            'sign_recognizer = edge_perception.ros.container:sign_main',
        ],
    },
)
