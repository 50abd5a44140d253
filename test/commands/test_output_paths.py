"""
Output paths on the command line: checked before the work, one line and status 2 when bad, never a traceback.

``rcdepth eval`` / ``eval-bag`` with ``--out`` under a file, ``show --out`` in /proc or naming a folder, ``export``
into a file's "folder"; and an OSError during the work (a full disk) is one line too.
"""

import pytest

from rcdepth_ros.cli import main
from rcdepth_ros.errors import OutputPathError
from rcdepth_ros.models import save_checkpoint
from rcdepth_ros.paths import check_output_file, check_output_folder

SYNTHETIC = '{config: {num_drives: 1, frames_per_drive: 1, width: 128, height: 96}}'


@pytest.fixture
def checkpoint(tmp_path, tiny_student):
    return save_checkpoint(tmp_path / 'tiny', *tiny_student)


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / 'results.txt'
    path.write_text('precious\n')
    return path


def _one_line_error(capsys, *fragments):
    err = capsys.readouterr().err
    assert 'Traceback' not in err and len(err.strip().splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def test_eval_out_under_a_file_fails_before_any_frame(checkpoint, a_file, capsys):
    argv = ['eval', '--model', str(checkpoint), '--dataset', 'synthetic', '--options', SYNTHETIC, '--device', 'cpu',
            '--out', str(a_file / 'eval')]
    assert main(argv) == 2
    err = _one_line_error(capsys, '--out', f'{a_file} is a file, not a folder')
    assert err.startswith('rcdepth eval: error:')
    assert a_file.read_text() == 'precious\n'


def test_eval_bag_out_under_a_file_fails_before_the_bag_is_read(checkpoint, a_file, tmp_path, capsys):
    argv = ['eval-bag', str(tmp_path / 'no_bag_needed'), '--model', str(checkpoint), '--out', str(a_file / 'x')]
    assert main(argv) == 2
    _one_line_error(capsys, 'rcdepth eval-bag: error: --out', 'is a file, not a folder')


@pytest.mark.parametrize('out, fragment', [('/proc/x.png', 'cannot write in /proc'),
                                           ('{tmp}/pictures/', 'names a folder'),
                                           ('{tmp}', 'names a folder'),
                                           ('{tmp}/frame.bmpx', 'unknown picture format')])
def test_show_checks_its_picture_path_first(tmp_path, capsys, out, fragment):
    (tmp_path / 'pictures').mkdir()
    out = out.format(tmp=tmp_path)
    assert main(['show', '--source', 'synthetic', '--frame', '0', '--out', out]) == 2
    _one_line_error(capsys, 'rcdepth show: error: --out', fragment)
    assert list((tmp_path / 'pictures').iterdir()) == []           # no hidden pictures/.png


def test_show_without_a_suffix_writes_a_png_and_says_where(zju_fixture, tmp_path, capsys):
    root, _ = zju_fixture
    assert main(['show', '--source', 'zju', '--root', str(root), '--frame', '0', '--out', str(tmp_path / 'f')]) == 0
    assert (tmp_path / 'f.png').is_file()
    assert capsys.readouterr().out.startswith(f'{tmp_path / "f.png"}: radar')


def test_an_os_error_during_the_work_is_one_line(zju_fixture, tmp_path, capsys):
    root, _ = zju_fixture
    # a picture path that leads to /dev/full: the open works, the write fails (a full disk); no check can see it
    full = tmp_path / 'full.png'
    full.symlink_to('/dev/full')
    assert main(['show', '--source', 'zju', '--root', str(root), '--frame', '0', '--out', str(full)]) == 2
    _one_line_error(capsys, 'rcdepth show: error: ', 'No space left on device')


def test_export_checks_both_outputs_first(checkpoint, a_file, capsys):
    assert main(['export', '--model', str(checkpoint), '--onnx', str(a_file / 'm.onnx')]) == 2
    _one_line_error(capsys, 'rcdepth export: error: --onnx', 'is a file, not a folder')


def test_the_checks_create_nothing_and_accept_new_folders(tmp_path, a_file):
    assert check_output_folder(tmp_path / 'new' / 'deeper') == tmp_path / 'new' / 'deeper'
    assert not (tmp_path / 'new').exists()
    assert check_output_file(tmp_path / 'new' / 'x', default_suffix='.png').name == 'x.png'
    with pytest.raises(OutputPathError, match='exists and is not a folder'):
        check_output_folder(a_file)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['results.txt']
