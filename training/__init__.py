"""
Offline training and distillation of the depth networks (teacher, LiRCDepth baseline, XD-RCDepth student).

``python -m training.train --config training/configs/<experiment>.yaml [key.sub=value ...] [--out runs/<name>]``
trains one experiment; ``python -m training.evaluate`` evaluates a checkpoint with ``rcdepth_ros.evaluation``
(the protocol of ``../shared/docs/method.md`` section 4, through the inference engine the node uses);
``python -m training.run_table`` runs the whole Astyx distillation table. This package imports ``rcdepth_ros``;
``rcdepth_ros`` never imports it.

Layout: ``config.py`` (the experiment schema), ``losses/`` (supervised and distillation terms), ``objective.py``
(the training step's loss from a batch), ``loop/`` (optimiser, resume state, data order, logs, plots, DDP,
the trainer), ``configs/`` (one YAML per experiment).
"""
