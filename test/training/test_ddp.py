"""
DistributedDataParallel through torchrun: two CPU processes on the gloo backend train one tiny distillation run.

Each rank trains on its half of every step's frames; DDP averages the gradients, so both replicas must end with
the same weights: rank 0 gathers the SHA-256 of every rank's student state dict into ``summary.json``. Only rank 0
writes: the run directory holds one copy of each file and the logs hold each step once.
"""

import json
import os
import subprocess
import sys

from rcdepth_ros.paths import SOURCE_ROOT


def test_torchrun_two_cpu_ranks_agree_and_only_rank0_writes(tmp_path, tiny_experiment, write_experiment,
                                                            tiny_teacher_checkpoint):
    config = write_experiment(tiny_experiment(
        train={'epochs': 2, 'log_every_steps': 1, 'plots': True},
        distill={'teacher': str(tiny_teacher_checkpoint), 'dd': {'enabled': True}, 'saliency': {'enabled': True}}))
    run = tmp_path / 'ddp'
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    done = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
                           '-m', 'training.train', '--config', str(config), '--out', str(run)],
                          cwd=SOURCE_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    summary = json.loads((run / 'summary.json').read_text())
    assert summary['world_size'] == 2
    # 8 frames, 2 ranks x batch 2: 2 steps an epoch
    assert summary['steps'] == 4 and summary['steps_per_epoch'] == 2
    # parameters agree after every step (DDP averages the gradients); batch-norm statistics after rank 0's are
    # broadcast at the end
    for key in ('replica_parameter_digests', 'replica_digests'):
        digests = summary[key]
        assert len(digests) == 2 and digests[0] == digests[1], key
    assert summary['replicas_agree']
    assert done.stdout.count('"final_checkpoint"') == 1          # one printed summary: rank 0's
    files = sorted(str(p.relative_to(run)) for p in run.rglob('*') if p.is_file())
    assert files == ['checkpoints/best.json', 'checkpoints/best.safetensors', 'checkpoints/final.json',
                     'checkpoints/final.safetensors', 'config.yaml', 'logs/train.csv', 'logs/val.csv',
                     'plots/curves.png', 'plots/samples_epoch001.png', 'plots/samples_epoch002.png',
                     'state/last.pt', 'state/previous.pt', 'summary.json']
    lines = (run / 'logs' / 'train.csv').read_text().splitlines()
    assert [line.split(',')[0] for line in lines] == ['step', '1', '2', '3', '4']
