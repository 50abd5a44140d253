"""The diagnostics' message says why no depth comes out, naming the counted reason, and what can hold images back."""

from node_harness import PERIOD, Rig, T0

from rcdepth_ros.nodes.diagnostics import LevelTracker, OK, status_values, waiting_message, WARN

FRAMES = {'images': 0, 'matched': 0, 'processed': 0, 'published': 0}
MIB = 2 ** 20


def _frames(**counts):
    return dict(FRAMES, **counts)


def test_after_one_bad_image_the_hint_names_it():
    tracker = LevelTracker()
    problems = {'bad_image': 0, 'no_camera_info': 0}
    assert tracker.level(problems, {}, 0.0, 0.0, _frames(), {}) == (OK, 'waiting for images')
    problems['bad_image'] = 1
    level, message = tracker.level(problems, {}, 10.0, 0.0, _frames(images=1, matched=1), {})
    assert level == WARN and 'bad_image +1' in message
    # the next report: nothing grew, images still arrive, still no depth: the counted reason is named
    level, message = tracker.level(problems, {}, 10.0, 0.0, _frames(images=2, matched=1), {})
    assert level == WARN and message.startswith('images arrive but no depth is published')
    assert 'bad_image 1' in message and 'model too slow' not in message


def test_the_hint_counts_from_the_last_depth_and_names_the_stage_frames_stopped_at():
    tracker = LevelTracker()
    problems = {'bad_image': 3}
    drops = {'sync.image': 0, 'keep_latest': 0}
    tracker.level(problems, {}, 10.0, 10.0, _frames(images=50, matched=50, processed=47, published=47), drops)
    # depth stopped; the old bad images are not the reason, the synchroniser's drops are
    level, message = tracker.level(problems, {}, 10.0, 0.0, _frames(images=60, matched=50, processed=47,
                                                                    published=47), dict(drops, **{'sync.image': 10}))
    assert level == WARN and 'sync.image 10' in message and 'bad_image' not in message
    # nothing counted: the frames' own counts say where they stop
    tracker = LevelTracker()
    _, message = tracker.level({}, {}, 10.0, 0.0, _frames(images=20), {})
    assert 'none of the last 20 images matched a radar sweep' in message
    tracker = LevelTracker()
    _, message = tracker.level({}, {}, 10.0, 0.0, _frames(images=20, matched=20), {})
    assert '20 frames matched, none processed yet' in message


def test_waiting_for_images_names_the_shared_memory_limit_when_a_publisher_exists():
    assert waiting_message(('/cam/image', 0, 64 * MIB)) == 'waiting for images (no publisher on /cam/image)'
    message = waiting_message(('/cam/image', 1, 64 * MIB))
    assert '1 publisher(s) on /cam/image' in message and '64.0 MiB DDS shared-memory segment' in message
    assert 'larger than the DDS transport' in waiting_message(('/cam/image', 2, None))


def test_the_node_names_the_reason_and_the_limit_in_its_diagnostics(harness, tiny_checkpoint, messages):
    rig = Rig(harness, tiny_checkpoint)

    def message():
        return rig.diagnostics[-1].status[0].message if rig.diagnostics else ''

    # the input publishers exist, no image yet: what can hold images back is said
    assert harness.spin_until(lambda: 'shared-memory segment' in message(), 10), message()
    assert f'{harness.namespace}/image' in message() and '64.0 MiB' in message()
    # only undecodable images: the message names the counted reason, not a guess
    for i in range(12):
        stamp = T0 + i * PERIOD
        rig.send(messages, stamp, image=messages.image(stamp, encoding='32FC1'))
        harness.spin_for(0.05)

    def no_depth_messages():
        return [a.status[0].message for a in rig.diagnostics if a.status[0].message.startswith('images arrive')]

    assert harness.spin_until(no_depth_messages, 10), message()
    assert all('since the last depth, bad_image ' in m for m in no_depth_messages()), no_depth_messages()
    assert harness.spin_until(lambda: status_values(rig.diagnostics[-1])['drops.bad_image'] == '12', 10)
