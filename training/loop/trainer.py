"""
The training loop: one experiment, one run directory, resumable at any moment.

Run directory (``--out``)::

    config.yaml                 the resolved experiment (bases and overrides merged) + command and git commit
    state/last.pt               resume state (loop.state), written every ``checkpoint_every_steps`` and per epoch
    state/previous.pt           the state before it: resumed from (with a warning) when last.pt cannot be read
    checkpoints/best.*          best-by-validation model checkpoint (rcdepth_ros.models.save_checkpoint format)
    checkpoints/final.*         the model after the last step: its presence means the run is complete
    logs/train.csv, val.csv     CSV logs; logs/tensorboard/ the TensorBoard events
    plots/curves.png, samples_epoch<NNN>.png
    summary.json                final numbers (time, steps, best validation, replica digests under DDP)

Step: the frozen teacher (when distilling online; offline targets come with the batch, ``training.targets``) and the
``TrainingObjective`` run under autocast (``train.amp``: bf16 on CUDA where supported, else fp16 with a gradient
scaler; bf16 on the CPU when asked), the losses in float32; every ``distill.balance_every_steps`` steps the gradient
norm of each distillation term relative to the supervised one is measured (``grad_<term>`` in ``logs/train.csv``) and
``grad_fraction`` terms re-weighted; backward, gradient clipping on the global norm, AdamW step, polynomial lr step. A
model with lidar input (a cross-modal teacher) reads the batch's ``lidar`` channels and is supervised on the held-out
rings (``depth_gt_heldout``). Determinism: the seed fixes the initialisation, the data order is a function of (seed,
epoch) and the augmentation of (seed, epoch, frame), and the resume state restores weights, optimiser, scheduler and
RNG exactly, so on the CPU a resumed run ends with bit-identical weights (``test/training/test_resume.py``).
"""

import contextlib
import gc
import json
from pathlib import Path
import random
import sys
import time

import numpy as np
from rcdepth_ros.config import to_dict
from rcdepth_ros.core.inference.engine import resolve_device
from rcdepth_ros.errors import ConfigError, TrainingError
from rcdepth_ros.evaluation.metrics import cap_key
from rcdepth_ros.models import build_model, load_checkpoint, save_checkpoint
import torch
from torch.nn.parallel import DistributedDataParallel
from training.loop import distributed
from training.loop.data import build_dataset, EpochBatchOrder, EpochSampler, make_loader, resolve_workers
from training.loop.data import sequential_batches
from training.loop.logs import RunLogger
from training.loop.optim import build_optimizer, build_scheduler
from training.loop.plots import plot_curves, plot_samples
from training.loop.provenance import command_line, git_commit
from training.loop.state import (capture_rng, load_resume_state, previous_state_path, restore_rng, save_state,
                                 state_path, STATE_VERSION)
from training.loop.validate import validate
from training.objective import check_teacher_for_student, teacher_info, TeacherRunner, TrainingObjective
from training.targets import default_directory, expected_manifest, open_targets, teacher_hash
from training.targets import teacher_output_from_batch
import yaml

# Keys that may differ between the run that wrote a run directory and the one resuming it.
RESUME_MAY_DIFFER = (('train', 'progress'), ('data', 'workers'), ('data', 'cache_dir'), ('train', 'plots'),
                     ('train', 'tensorboard'), ('data', 'persistent_workers'), ('data', 'pin_memory'),
                     ('data', 'prefetch'))


def resolve_precision(amp, device):
    """Return (autocast dtype or None, use a gradient scaler) for ``train.amp`` on ``device``."""
    if amp == 'off' or (amp == 'auto' and device.type != 'cuda'):
        return None, False
    if device.type == 'cuda':
        if amp in ('auto', 'bf16') and torch.cuda.is_bf16_supported():
            return torch.bfloat16, False
        if amp == 'bf16':
            raise ConfigError('train.amp: bf16 is not supported by this CUDA device; use fp16 or off')
        return torch.float16, True
    if amp == 'fp16':
        raise ConfigError('train.amp: fp16 autocast is for CUDA; on the CPU use bf16 or off')
    return torch.bfloat16, False


def best_score(result, metric, cap):
    """Return the selection score of a MetricsResult (lower is better; delta metrics are negated)."""
    value = (result.caps.get(cap_key(cap)) or {}).get(metric)
    if value is None:
        return None
    return -value if metric.startswith('delta') else value


def _comparable(config):
    data = json.loads(json.dumps(config))
    for section, key in RESUME_MAY_DIFFER:
        data.get(section, {}).pop(key, None)
    return data


class Trainer:
    """Train one experiment into ``run_dir`` (see the module docstring); ``run()`` returns the summary dict."""

    def __init__(self, experiment, run_dir, command=None, resume='auto'):
        """Keep the experiment; ``resume``: 'auto' (continue when state exists), True (require it) or False."""
        if resume not in ('auto', True, False):
            raise ConfigError(f"resume must be 'auto', True or False, got {resume!r}")
        self.cfg = experiment
        self.run_dir = Path(run_dir)
        self.command = command or command_line()
        self.resume = resume

    # ------------------------------------------------------------------ set-up
    def _setup(self):
        cfg = self.cfg
        tcfg = cfg.train
        if tcfg.threads:
            torch.set_num_threads(tcfg.threads)
        self.device = resolve_device(tcfg.device)
        self.dist = distributed.init_distributed(self.device.type)
        if self.dist.enabled and self.device.type == 'cuda':
            self.device = torch.device('cuda', self.dist.local_rank)
            torch.cuda.set_device(self.device)
        self.main = self.dist.is_main
        self.autocast_dtype, use_scaler = resolve_precision(tcfg.amp, self.device)
        if self.device.type == 'cuda':
            torch.backends.cudnn.benchmark = bool(tcfg.cudnn_benchmark)
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.scaler = torch.amp.GradScaler('cuda') if use_scaler else None
        self.fmt = torch.channels_last if tcfg.channels_last else torch.contiguous_format
        random.seed(tcfg.seed)
        np.random.seed(tcfg.seed)
        torch.manual_seed(tcfg.seed)
        self.teacher = self._load_teacher()
        student = build_model(cfg.model, cfg.input)
        info = self.teacher_info
        self.objective = TrainingObjective(student, cfg, info).to(self.device).to(memory_format=self.fmt)
        own_lidar = cfg.model.lidar_input if cfg.model.lidar_input.enabled else None
        self.gt_key = 'depth_gt_heldout' if own_lidar else 'depth_gt'
        teacher_lidar = info['lidar_input'] if info and info['lidar_input'].enabled else None
        if own_lidar and teacher_lidar and tuple(own_lidar.rings) != tuple(teacher_lidar.rings):
            raise ConfigError(f"model.lidar_input rings {list(own_lidar.rings)} differ from the teacher's "
                              f'{list(teacher_lidar.rings)}: both read the same batch')
        self.store = self._offline_targets(teacher_lidar)
        lidar = own_lidar or (teacher_lidar if self.store is None else None)
        self.train_set = build_dataset(cfg.data, cfg.input, cfg.data.train, tcfg.seed, augment=True,
                                       lidar_input=lidar, aligned_maps=self.store)
        self.val_set = build_dataset(cfg.data, cfg.input, cfg.data.val, tcfg.seed, augment=False,
                                     lidar_input=own_lidar) if cfg.data.val is not None else None
        self.order = EpochBatchOrder(len(self.train_set), tcfg.batch_size, tcfg.seed, self.dist.rank,
                                     self.dist.world_size, tcfg.max_steps_per_epoch)
        self.workers = resolve_workers(cfg.data.workers, self.device.type)
        pin = self.device.type == 'cuda' if cfg.data.pin_memory == 'auto' else bool(cfg.data.pin_memory)
        self.sampler = EpochSampler(self.order)
        self.train_loader = make_loader(self.train_set, self.sampler, self.workers, pin, cfg.data.persistent_workers,
                                        cfg.data.prefetch)
        self.val_loader = None
        if self.val_set is not None and self.main:
            self.val_loader = make_loader(self.val_set, sequential_batches(len(self.val_set), tcfg.val_batch_size),
                                          self.workers, pin, cfg.data.persistent_workers, cfg.data.prefetch)
        self.total_steps = tcfg.epochs * self.order.steps_per_epoch
        self.optimizer = build_optimizer(self.objective.parameters(), tcfg)
        self.scheduler = build_scheduler(self.optimizer, tcfg, self.total_steps)
        self.model = self.objective
        if self.dist.enabled:
            unused = bool(len(self.objective.kd)) and cfg.distill.start_epoch > 0
            ids = [self.device.index] if self.device.type == 'cuda' else None
            self.model = DistributedDataParallel(self.objective, device_ids=ids, find_unused_parameters=unused)

    def _load_teacher(self):
        path = self.cfg.distill.teacher
        self.teacher_info = None
        self.teacher_digest = None
        if not path:
            return None
        model, input_cfg, _, meta = load_checkpoint(path, map_location='cpu')
        check_teacher_for_student(input_cfg, self.cfg.input, f'distill.teacher {path}')
        model = model.to(self.device).to(memory_format=self.fmt)
        self.teacher_meta = meta
        self.teacher_info = teacher_info(model)
        self.teacher_digest = teacher_hash(path)
        return TeacherRunner(model, self.cfg.distill)

    def _offline_targets(self, teacher_lidar):
        """Return the TargetStore of the run's teacher (built where missing), or None when distilling online."""
        cfg = self.cfg
        if self.teacher is None or not cfg.distill.targets.offline:
            return None
        stored = {'depth'}
        needs = set().union(*(term.teacher_outputs() for term in self.objective.kd.values()))
        if 'saliency' in needs:
            stored.add('saliency')
        if self.teacher_info['bin_centers'] is not None and needs & {'logits', 'uncertainty'}:
            stored.add('logits')
        plain = build_dataset(cfg.data, cfg.input, cfg.data.train, cfg.train.seed, augment=False,
                              lidar_input=teacher_lidar)
        expected = expected_manifest(cfg, cfg.distill.teacher, self.teacher_digest, plain.reader, stored,
                                     self.teacher.saliency)
        directory = cfg.distill.targets.directory or default_directory(cfg.data.cache_dir, self.teacher_digest)
        log = print if self.main else None
        with self._autocast():
            store = open_targets(directory, expected, self.teacher, plain, self.device, log=log)
        self.teacher.model.to('cpu')          # offline: the teacher is not run again
        return store

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    # ------------------------------------------------------------------ state
    def _fresh_history(self):
        return {'epoch': 0, 'step_in_epoch': 0, 'global_step': 0, 'elapsed_s': 0.0,
                'best': {'score': None, 'epoch': None, 'step': None}, 'val': []}

    def _write_config(self):
        config = self.cfg.to_dict()
        path = self.run_dir / 'config.yaml'
        if path.is_file():
            saved = yaml.safe_load(path.read_text()) or {}
            saved.pop('provenance', None)
            if _comparable(saved) != _comparable(config):
                raise TrainingError(f'{self.run_dir}: this run directory holds a different experiment '
                                    f'(config.yaml differs); use another --out or delete it')
            if self.progress['global_step'] > 0:
                return
        body = dict(config, provenance={'command': self.command, 'git': self.git})
        tmp = path.with_name('.config.yaml.tmp')
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tmp.write_text(yaml.safe_dump(body, sort_keys=False))
        tmp.replace(path)

    def _save_state(self):
        if not self.main:
            return
        state = {'version': STATE_VERSION, 'objective': self.objective.state_dict(),
                 'optimizer': self.optimizer.state_dict(), 'scheduler': self.scheduler.state_dict(),
                 'scaler': self.scaler.state_dict() if self.scaler else None, 'rng': capture_rng(),
                 'progress': dict(self.progress, elapsed_s=self._elapsed())}
        save_state(state, self.run_dir)

    def _restore(self):
        path = state_path(self.run_dir)
        present = path.is_file() or previous_state_path(self.run_dir).is_file()
        if self.resume is False or not present:
            if self.resume is True:
                raise TrainingError(f'{self.run_dir}: --resume given but there is no resume state at {path}')
            return False
        state, used, warning = load_resume_state(self.run_dir)
        if self.main and warning is not None:
            print(f'warning: {warning}', file=sys.stderr, flush=True)
        self.objective.load_state_dict(state['objective'])
        self.optimizer.load_state_dict(state['optimizer'])
        self.scheduler.load_state_dict(state['scheduler'])
        if self.scaler is not None and state.get('scaler'):
            self.scaler.load_state_dict(state['scaler'])
        restore_rng(state['rng'])
        self.progress = dict(state['progress'])
        if self.main:
            print(f'resumed from step {self.progress["global_step"]} (epoch {self.progress["epoch"] + 1}, step '
                  f'{self.progress["step_in_epoch"]} of it) of {used}', file=sys.stderr, flush=True)
        return True

    def _remove_stale_outputs(self):
        # A fresh start must not leave an older run's state or final checkpoint to be picked up later.
        stale = [state_path(self.run_dir), previous_state_path(self.run_dir), self.run_dir / 'summary.json']
        checkpoints = self.run_dir / 'checkpoints'
        stale += list(checkpoints.glob('*.safetensors')) if checkpoints.is_dir() else []
        for path in stale:
            for item in (path, path.with_suffix('.json')) if path.suffix == '.safetensors' else (path,):
                item.unlink(missing_ok=True)

    def _elapsed(self):
        return self.progress['elapsed_s'] + (time.perf_counter() - self._segment_start)

    # ------------------------------------------------------------------ checkpoints
    def _training_meta(self, kind, result=None):
        data = self.cfg.data
        return {'teacher_hash': self.teacher_digest,
                'offline_targets': str(self.store.directory) if self.store else None,
                'kind': kind, 'experiment': self.cfg.name, 'command': self.command, 'git': self.git,
                'data': {'source': data.source, 'root': data.root, 'options': data.options,
                         'train': to_dict(data.train), 'val': to_dict(data.val) if data.val else None},
                'seed': self.cfg.train.seed, 'epoch': self.progress['epoch'], 'step': self.progress['global_step'],
                'teacher': self.cfg.distill.teacher, 'distill_terms': self.cfg.distill.enabled_terms(),
                'val_metrics_model_resolution': result.to_dict() if result is not None else None}

    def _save_model(self, name, kind, result=None):
        path = self.run_dir / 'checkpoints' / name
        save_checkpoint(path, self.objective.student, self.cfg.input, self.cfg.model,
                        training=self._training_meta(kind, result), dtype=self.cfg.train.checkpoint_dtype)
        return path

    # ------------------------------------------------------------------ loop
    def _teacher_out(self, batch, image, radar):
        if self.store is not None:
            return teacher_output_from_batch(batch, self.device, self.teacher_info['bin_centers'])
        lidar = None
        if self.teacher.reads_lidar:
            lidar = batch['lidar'].to(self.device, non_blocking=True).contiguous(memory_format=self.fmt)
        return self.teacher(image, radar, lidar)

    def _distill_factor(self, epoch, step_in_epoch):
        """Return the distillation terms' factor at a step: 0 before start_epoch, then a linear ramp to 1."""
        dcfg = self.cfg.distill
        if self.teacher is None or not self.objective.kd:
            return 0.0
        steps = max(self.order.steps_per_epoch, 1)
        if epoch + step_in_epoch / steps < dcfg.start_epoch:
            return 0.0
        if dcfg.ramp_epochs <= 0:
            return 1.0
        done = epoch + (step_in_epoch + 1) / steps - dcfg.start_epoch       # epochs of KD after this step
        return min(1.0, done / dcfg.ramp_epochs)

    def _step(self, batch, factor):
        image = batch['image'].to(self.device, non_blocking=True).contiguous(memory_format=self.fmt)
        radar = batch['radar'].to(self.device, non_blocking=True).contiguous(memory_format=self.fmt)
        sparse = batch[self.gt_key].to(self.device, non_blocking=True)
        dense = batch['depth_gt_dense'].to(self.device, non_blocking=True)
        has_dense = batch['has_dense'].to(self.device)
        kwargs = {}
        if self.gt_key == 'depth_gt_heldout':       # a lidar-input model (the cross-modal teacher) in training
            kwargs['lidar'] = batch['lidar'].to(self.device, non_blocking=True).contiguous(memory_format=self.fmt)
        with self._autocast():
            teacher_out = self._teacher_out(batch, image, radar) if factor > 0 else None
            loss, terms, _ = self.model(image, radar, sparse, dense, has_dense, teacher_out, factor, **kwargs)
        step = self.progress['global_step'] + 1
        if teacher_out is not None and (step % self.cfg.distill.balance_every_steps == 0 or
                                        self.objective.needs_calibration()):
            scale = float(self.scaler.get_scale()) if self.scaler is not None else 1.0
            ratios = self.objective.balance(self.objective.gradient_norms(scale))
            loss = self.objective.recombine(factor)
            terms.update({f'grad_{name}': factor * r for name, r in ratios.items()})
            terms.update({f'weight_{name}': factor * w for name, w in self.objective.weights().items()})
        if not torch.isfinite(loss.detach()):
            raise TrainingError(f'non-finite training loss {float(loss)} at step {self.progress["global_step"]} '
                                f'(terms {terms}); frames {list(batch["frame_id"])}')
        self.optimizer.zero_grad(set_to_none=True)
        clip = self.cfg.train.grad_clip
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            if clip:
                torch.nn.utils.clip_grad_norm_(self.objective.parameters(), clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(self.objective.parameters(), clip)
            self.optimizer.step()
        self.scheduler.step()
        return float(loss.detach()), terms

    def _validate(self, epoch):
        tcfg = self.cfg.train
        result = None
        if self.main and self.val_loader is not None:
            result, first = validate(self.objective.student, self.val_loader, self.device, self._autocast,
                                     tcfg.channels_last, gt_key=self.gt_key)
            self.logger.log_validation(epoch + 1, self.progress['global_step'], result)
            self.progress['val'] = list(self.progress['val']) + [
                {'epoch': epoch + 1, 'step': self.progress['global_step'], 'metrics': result.to_dict()}]
            score = best_score(result, tcfg.best_metric, tcfg.best_cap)
            best = self.progress['best']
            if score is not None and (best['score'] is None or score < best['score']):
                self.progress['best'] = {'score': score, 'epoch': epoch + 1, 'step': self.progress['global_step']}
                self._save_model('best', 'best', result)
            if tcfg.plots:
                self._plots(epoch, first)
        distributed.barrier(self.dist)
        return result

    def _plots(self, epoch, first):
        plots = self.run_dir / 'plots'
        plot_curves(self.logger.train.rows(), self.logger.val.rows(), plots / 'curves.png',
                    cap=str(int(self.cfg.train.best_cap)) if float(self.cfg.train.best_cap).is_integer()
                    else repr(self.cfg.train.best_cap))
        count = min(self.cfg.train.sample_images, len(first['frame_id'])) if first else 0
        if count:
            depth_channel = list(self.cfg.input.radar_channels).index('depth') \
                if 'depth' in self.cfg.input.radar_channels else 0
            plot_samples(first['image'][:count], first['radar_raw'][:count, depth_channel], first['gt'][:count],
                         first['pred'][:count], plots / f'samples_epoch{epoch + 1:03d}.png', self.cfg.input,
                         max_depth=min(80.0, self.cfg.input.max_depth), frame_ids=first['frame_id'][:count])

    def run(self):
        """Train (or continue) to the end; return the summary dict (also written to ``summary.json``)."""
        self._setup()
        self.git = git_commit()        # the code this process imported (others may commit while it trains)
        self._segment_start = time.perf_counter()
        self.loop_seconds, self.loop_frames = 0.0, 0
        self.progress = self._fresh_history()
        resumed = self._restore()
        tcfg = self.cfg.train
        if self.main:
            self._write_config()
            if not resumed:
                self._remove_stale_outputs()
        distributed.barrier(self.dist)
        kd = self.cfg.distill.enabled_terms()
        terms = ['supervised'] + (['radar_branch'] if self.cfg.loss.radar_branch_weight > 0 else []) + kd + \
            [f'grad_{n}' for n in kd] + [f'weight_{n}' for n in kd]
        self.logger = RunLogger(self.run_dir, terms, (50.0, 70.0, 80.0), enabled=self.main,
                                resume_step=self.progress['global_step'] if resumed else None,
                                tensorboard=tcfg.tensorboard, progress=tcfg.progress)
        try:
            self._train_epochs()
            summary = self._finish()
            # Leave the process group together: a gloo rank that tears down while another still talks to it can
            # abort at exit ('terminate called without an active exception'), failing a finished run.
            distributed.barrier(self.dist)
            return summary
        finally:
            self.logger.close()
            if self.dist.enabled:
                # DDP's reducer holds the process group: release it before the group goes, or its gloo threads are
                # torn down at interpreter exit and a finished rank can abort ('terminate called without an
                # active exception').
                self.model = None
                gc.collect()
            distributed.shutdown(self.dist)

    def _train_epochs(self):
        tcfg = self.cfg.train
        steps = self.order.steps_per_epoch
        while self.progress['epoch'] < tcfg.epochs:
            epoch, start = self.progress['epoch'], self.progress['step_in_epoch']
            self.train_set.set_epoch(epoch)
            self.sampler.start(epoch, start)
            self.logger.start_epoch(epoch, tcfg.epochs, steps, start)
            self.objective.train()
            tick = time.perf_counter()
            for batch in self.train_loader:
                factor = self._distill_factor(epoch, self.progress['step_in_epoch'])
                loss, terms = self._step(batch, factor)
                self.progress['global_step'] += 1
                self.progress['step_in_epoch'] += 1
                now = time.perf_counter()
                self.loop_seconds += now - tick
                self.loop_frames += len(batch['frame_id']) * self.dist.world_size
                lr = self.scheduler.get_last_lr()[0]
                self.logger.advance(loss, lr)
                step = self.progress['global_step']
                if step % tcfg.log_every_steps == 0 or self.progress['step_in_epoch'] == steps:
                    self.logger.log_step(step, epoch + 1, lr, loss, terms, now - tick)
                tick = now
                if step % tcfg.checkpoint_every_steps == 0 and self.progress['step_in_epoch'] < steps:
                    self._save_state()
            self.logger.end_epoch()
            self.progress['epoch'] = epoch + 1
            self.progress['step_in_epoch'] = 0
            if (epoch + 1) % tcfg.val_every_epochs == 0 or epoch + 1 == tcfg.epochs:
                self._validate(epoch)
            self._save_state()

    def _finish(self):
        parameter_digests = distributed.gather_objects(
            self.dist, distributed.state_digest(self.objective.student, buffers=False))
        distributed.broadcast_buffers(self.dist, self.objective.student)
        digests = distributed.gather_objects(self.dist, distributed.state_digest(self.objective.student))
        summary = None
        if self.main:
            final = self._save_model('final', 'final', None)
            summary = {'experiment': self.cfg.name, 'run_dir': str(self.run_dir), 'complete': True,
                       'epochs': self.cfg.train.epochs, 'steps': self.progress['global_step'],
                       'steps_per_epoch': self.order.steps_per_epoch, 'train_seconds': self._elapsed(),
                       'world_size': self.dist.world_size, 'device': str(self.device),
                       'autocast': str(self.autocast_dtype).replace('torch.', '') if self.autocast_dtype else None,
                       'train_frames_per_second': self.loop_frames / self.loop_seconds if self.loop_seconds else None,
                       'data_workers': self.workers,
                       'offline_targets': str(self.store.directory) if self.store else None,
                       'best': self.progress['best'], 'validation': self.progress['val'],
                       'final_checkpoint': str(final), 'replica_digests': digests,
                       'replica_parameter_digests': parameter_digests,
                       'replicas_agree': len(set(digests)) == 1 and len(set(parameter_digests)) == 1}
            tmp = self.run_dir / '.summary.json.tmp'
            tmp.write_text(json.dumps(summary, indent=2) + '\n')
            tmp.replace(self.run_dir / 'summary.json')
        return distributed.broadcast_object(self.dist, summary)


def train(experiment, run_dir, command=None, resume='auto'):
    """Train ``experiment`` into ``run_dir``; return the summary dict."""
    return Trainer(experiment, run_dir, command, resume).run()
