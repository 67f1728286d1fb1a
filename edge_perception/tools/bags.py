"""rosbag2 files without ros2bag: writing synthetic drives and playing any bag into the graph.

Both use the ``rosbags`` library (sqlite3 and mcap storage). Messages are serialised and
published as CDR bytes by rclpy itself, so the player needs no conversion per type: any topic
whose type rclpy can import is played, whoever wrote the bag.

Ground truth in synthetic bags is typed like the nodes' outputs (edge_perception_msgs
``TrafficLightArray`` and ``TrafficSignArray``, variant 'ground_truth') on
``/ground_truth/traffic_lights`` and ``/ground_truth/traffic_signs``, stamped like the frame;
bags carry the definitions of our types, so other tools can read them.
"""

from __future__ import annotations

import dataclasses
import importlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rclpy._rclpy_pybind11 import RCLError
from rclpy.duration import Duration as RclpyDuration
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from tqdm import tqdm

from edge_perception.ros.cdr_header import with_stamp
from edge_perception.ros.image_conversion import encode_bgr8
from edge_perception.ros.message_adapter import message_adapter, ns_from_time, time_from_ns
from edge_perception.synthetic.scenes import Frame, generate_frame
from edge_perception.tasks.classes import LIGHT_STATES, SIGN_CLASSES
from edge_perception.tasks.detections import Detection
from edge_perception.tools.bag_errors import BagError
from edge_perception.tools.read_ahead import ReadAhead

CAMERA_TOPICS = ('/camera/image_raw', '/camera2/image_raw')
CAMERA_FRAMES = ('camera_front', 'camera_left')
GROUND_TRUTH_TOPICS = {'light': '/ground_truth/traffic_lights',
                       'sign': '/ground_truth/traffic_signs'}
_KINDS = {'light': 'traffic_light', 'sign': 'traffic_sign'}
# Synthetic drives start at a fixed time, so the same arguments give the same bag.
START_NS = 1_700_000_000_000_000_000
STORAGES = {'sqlite3': StoragePlugin.SQLITE3, 'mcap': StoragePlugin.MCAP}


def _at_resolution(frame: Frame, resolution: tuple[int, int] | None) -> Frame:
    """``frame`` scaled to ``resolution`` (width, height) with its labels, as a camera of that
    size would see the scene; unchanged for None."""
    if resolution is None:
        return frame
    width, height = resolution
    scale_x, scale_y = width / frame.image.shape[1], height / frame.image.shape[0]
    image = np.asarray(cv2.resize(frame.image, (width, height),
                                  interpolation=cv2.INTER_LINEAR), dtype=np.uint8)
    objects = tuple(dataclasses.replace(o, x=o.x * scale_x, y=o.y * scale_y,
                                        width=o.width * scale_x, height=o.height * scale_y)
                    for o in frame.objects)
    return dataclasses.replace(frame, image=image, objects=objects)


def _truth_detections(frame: Frame, kind: str) -> list[Detection]:
    labels = LIGHT_STATES if kind == 'light' else SIGN_CLASSES
    return [Detection(label=o.label, class_id=labels.index(o.label), score=1.0,
                      x=o.x, y=o.y, width=o.width, height=o.height)
            for o in frame.objects if o.kind == kind]


def write_synthetic_bag(path: Path, *, frames: int, rate_hz: float = 30.0, cameras: int = 1,
                        storage: str = 'sqlite3', corrupt_every: int = 0,
                        split: str = 'demo', resolution: tuple[int, int] | None = None,
                        ground_truth: bool = True) -> int:
    """Write a synthetic drive: camera frames at ``rate_hz`` plus (``ground_truth``) the
    objects in them, as a real drive's bag would not have.

    ``corrupt_every`` = k > 0 makes every k-th frame of the first camera malformed (cycling
    through bad encoding, truncated data and a step too small), for robustness tests.
    ``resolution`` (width, height): frames scaled to a real camera's size (default 320x240).
    Returns the number of messages written.
    """
    if path.exists():
        raise BagError(f'Cannot write bag {path}: it already exists')
    if storage not in STORAGES:
        raise BagError(f'Cannot write bag {path}: storage {storage!r} is not one of '
                       f'{sorted(STORAGES)}')
    if not 1 <= cameras <= len(CAMERA_TOPICS):
        raise BagError(f'Cannot write bag {path}: cameras = {cameras} must be 1 or 2')
    adapter = message_adapter()
    types = typestore()
    written = 0
    with Writer(path, version=9, storage_plugin=STORAGES[storage]) as writer:
        image_connections = [writer.add_connection(topic, 'sensor_msgs/msg/Image',
                                                   typestore=types)
                             for topic in CAMERA_TOPICS[:cameras]]
        truth_connections = {kind: writer.add_connection(
            topic, _msgtype(adapter.detections_type(_KINDS[kind])), typestore=types)
            for kind, topic in GROUND_TRUTH_TOPICS.items() if ground_truth}
        for index in tqdm(range(frames), desc=f'writing {path.name}'):
            stamp_ns = START_NS + round(index * 1e9 / rate_hz)
            for camera, connection in enumerate(image_connections):
                frame = _at_resolution(generate_frame(split, index * cameras + camera),
                                       resolution)
                msg = Image(header=Header(stamp=time_from_ns(stamp_ns),
                                          frame_id=CAMERA_FRAMES[camera]))
                encode_bgr8(frame.image, msg)
                if camera == 0 and corrupt_every and index % corrupt_every == corrupt_every - 1:
                    _corrupt(msg, index // corrupt_every)
                writer.write(connection, stamp_ns, serialize_message(msg))
                written += 1
                if camera == 0:
                    for kind, truth in truth_connections.items():
                        detections = adapter.detections(_KINDS[kind], msg.header,
                                                        'ground_truth',
                                                        _truth_detections(frame, kind))
                        writer.write(truth, stamp_ns, serialize_message(detections))
                        written += 1
    return written


def _corrupt(msg: Image, which: int) -> None:
    kind = which % 3
    if kind == 0:
        msg.encoding = 'yuv422'
    elif kind == 1:
        msg.data = bytes(msg.data)[: len(msg.data) // 2]
    else:
        msg.step = msg.width  # smaller than width * 3


@dataclass(frozen=True)
class BagMessage:
    topic: str
    msgtype: str
    timestamp_ns: int
    raw: bytes


def typestore() -> Typestore:
    """Kilted's message types and ours, as rosbags reads and writes them: from the .msg files
    installed beside edge_perception_msgs (<prefix>/share/edge_perception_msgs/msg)."""
    import edge_perception_msgs

    store = get_typestore(Stores.ROS2_KILTED)
    share = Path(edge_perception_msgs.__file__).parents[4] / 'share' / 'edge_perception_msgs'
    ours: dict[str, Any] = {}
    for definition in sorted((share / 'msg').glob('*.msg')):
        ours |= get_types_from_msg(definition.read_text(encoding='utf-8'),
                                   f'edge_perception_msgs/msg/{definition.stem}')
    if not ours:
        raise BagError(f'no message definitions under {share / "msg"}: rebuild '
                       'edge_perception_msgs (./scripts/bootstrap)')
    store.register(ours)
    return store


def _msgtype(cls: type) -> str:
    """'pkg/msg/Name' of an rclpy message class."""
    return f'{cls.__module__.split(".")[0]}/msg/{cls.__name__}'


def _open(path: Path) -> AnyReader:
    try:
        reader = AnyReader([path], default_typestore=typestore())
        reader.open()
    except Exception as err:  # rosbags raises several unrelated types
        raise BagError(f'Cannot read bag {path}: {err}') from None
    return reader


def bag_topics(path: Path) -> dict[str, str]:
    """Topic -> message type of every connection in the bag."""
    reader = _open(path)
    try:
        return {c.topic: c.msgtype for c in reader.connections}
    finally:
        reader.close()


def read_bag(path: Path) -> Iterator[tuple[BagMessage, Any]]:
    """Every message in time order, streamed, with a deserialised copy (rosbags types).

    :raises BagError: naming the bag when it cannot be opened, or the message that cannot
        be decoded.
    """
    reader = _open(path)
    try:
        for index, (connection, timestamp, raw) in enumerate(reader.messages()):
            message = BagMessage(connection.topic, connection.msgtype, timestamp, bytes(raw))
            try:
                decoded = reader.deserialize(raw, connection.msgtype)
            except Exception as err:  # rosbags raises several kinds on malformed CDR
                raise BagError(f'Cannot read bag {path}: message {index} on '
                               f'{connection.topic} ({connection.msgtype}, {len(raw)} bytes, '
                               f't={timestamp} ns) cannot be decoded: {err!r}') from err
            yield message, decoded
    finally:
        reader.close()


def message_class(msgtype: str) -> type | None:
    """The rclpy class of 'pkg/msg/Name', or None when it is not installed here."""
    package, _, name = msgtype.rpartition('/')
    try:
        module = importlib.import_module(package.replace('/', '.'))
    except ImportError:
        return None
    found = getattr(module, name, None)
    return found if isinstance(found, type) else None


@dataclass(frozen=True)
class PlayedImage:
    """An image the player sent: its header stamp, the wall time it was sent, and the stamp
    it was recorded with (the key of the bag's ground truth; differs when restamped)."""

    topic: str
    stamp_ns: int
    sent_ns: int
    recorded_stamp_ns: int


def restamped(raw: bytes, msgtype: type, stamp_ns: int) -> bytes:
    """Serialised ``raw`` (of ``msgtype``, whose first field is a std_msgs/Header) with its
    header stamp set to ``stamp_ns``: its 8 bytes replaced where the encapsulation is plain
    CDR (57 us for a 640x480 frame here, against 570 us to deserialise and serialise it),
    else the message rebuilt."""
    patched = with_stamp(raw, stamp_ns)
    if patched is not None:
        return patched
    message: Any = deserialize_message(raw, msgtype)
    message.header.stamp = time_from_ns(stamp_ns)
    return bytes(serialize_message(message))


class BagPlayer:
    """Plays a bag into the graph through ``node``'s publishers with the original timing.

    :param rate: playback speed factor (2.0 = twice as fast).
    :param start_offset_s: skip this much of the bag's beginning.
    :param loop: start over at the end until :meth:`stop`.
    :param on_image: called for every sensor_msgs/Image sent (collectors match outputs).
    :param restamp: give every image the wall-clock time it is sent as its header stamp, as a
        live camera would (response times can then be read off a recording of the outputs).

    A message DDS refuses (a reliable reader too slow for the stream fills the writer's
    history: "cannot publish data") is counted in ``unsent`` per topic and logged; the
    drive goes on, as a camera driver drops a frame it cannot hand over.
    """

    def __init__(self, node: Node, bag: Path, *, rate: float = 1.0, loop: bool = False,
                 start_offset_s: float = 0.0,
                 on_image: Callable[[PlayedImage], None] | None = None,
                 restamp: bool = False) -> None:
        if rate <= 0:
            raise BagError(f'Cannot play bag {bag}: rate {rate} must be positive')
        self.node = node
        self.bag = bag
        self.rate = rate
        self.loop = loop
        self.start_offset_ns = round(start_offset_s * 1e9)
        self.on_image = on_image
        self.restamp = restamp
        self.published = 0
        self.unsent: Counter[str] = Counter()
        self.last_error = ''
        self.failure: Exception | None = None
        self.skipped_topics: set[str] = set()
        self._stop = threading.Event()
        self.done = threading.Event()
        self.publishers: dict[str, Publisher[Any]] = {}
        # Publishers exist from construction on, so subscribers can be discovered before play.
        for topic, msgtype in bag_topics(bag).items():
            cls = message_class(msgtype)
            if cls is None:
                self.skipped_topics.add(topic)
                node.get_logger().warning(
                    f'{bag}: skipping {topic}: type {msgtype} is not installed')
            else:
                self.publishers[topic] = node.create_publisher(cls, topic, 10)

    def play(self) -> None:
        """Blocking playback (run it on a thread); returns at the end or on :meth:`stop`."""
        try:
            while not self._stop.is_set():
                before = self.published
                try:
                    self._play_once()
                except Exception as err:  # rclpy raises several kinds once its context is gone
                    if self.node.context.ok():
                        self.failure = err  # for the caller's thread: raise_failure()
                    return  # shut down (SIGINT/SIGTERM) while publishing: nothing to say
                if not self.loop:
                    self._wait_for_acks()
                    return
                if self.published == before:  # nothing to play: looping would spin a core
                    self.node.get_logger().warning(f'{self.bag}: no message to play; '
                                                   'not looping')
                    return
        finally:
            self.done.set()

    def _wait_for_acks(self, timeout_s: float = 5.0) -> None:
        """Until every reliable subscriber acknowledged what was published (as ros2 bag play
        --wait-for-all-acked): a process that exits right after its last large frame takes
        that frame's unsent fragments with it."""
        for publisher in self.publishers.values():
            publisher.wait_for_all_acked(RclpyDuration(seconds=timeout_s))

    def _play_once(self) -> None:
        start, first = 0, None
        messages = ReadAhead(read_bag(self.bag), size_of=lambda item: len(item[0].raw))
        try:
            messages.wait_filled()
            with tqdm(desc=f'replaying {self.bag.name}', unit='msg') as progress:
                for message, decoded in messages:
                    if first is None:
                        first = message.timestamp_ns + self.start_offset_ns
                        start = time.monotonic_ns()
                    if message.timestamp_ns < first:
                        continue
                    due = start + round((message.timestamp_ns - first) / self.rate)
                    wait_s = (due - time.monotonic_ns()) / 1e9
                    if wait_s > 0 and self._stop.wait(wait_s):
                        return
                    if self._publish(message, decoded):
                        progress.update()
        finally:
            messages.close()

    def _publish(self, message: BagMessage, decoded: Any) -> bool:
        """Send one message (False: its topic is skipped), telling ``on_image`` of images."""
        publisher = self.publishers.get(message.topic)
        if publisher is None:
            return False
        is_image = message.msgtype == 'sensor_msgs/msg/Image'
        recorded = ns_from_time(decoded.header.stamp) if is_image else None
        stamp = recorded
        try:
            if is_image and self.restamp:
                stamp = time.time_ns()
                publisher.publish(restamped(message.raw, Image, stamp))
            else:
                publisher.publish(message.raw)
        except RCLError as err:
            if not self.node.context.ok():
                raise
            self.unsent[message.topic] += 1
            self.last_error = str(err)
            self.node.get_logger().error(
                f'{message.topic}: message {self.published + sum(self.unsent.values())} not '
                f'sent ({sum(self.unsent.values())} so far): {err}', throttle_duration_sec=2.0)
            return False
        self.published += 1
        if self.on_image is not None and stamp is not None and recorded is not None:
            self.on_image(PlayedImage(message.topic, stamp, time.time_ns(), recorded))
        return True

    def raise_failure(self) -> None:
        """Raise, in the caller's thread, what ended :meth:`play` early (a bag that cannot be
        read on): a thread's exception would otherwise only be printed."""
        if self.failure is not None:
            raise self.failure

    def stop(self) -> None:
        self._stop.set()
