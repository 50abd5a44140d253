"""
Loss terms of training and distillation, as plain functions of tensors.

``supervised.py`` (masked L1, LiRCDepth's rectified L1, the teacher's radar branch), ``xd.py`` (XD-RCDepth's
depth-distribution and saliency KD), ``lircdepth.py`` (LiRCDepth's feature, pair-wise and inter-depth KD) and
``optional.py`` (FSNet, confidence-aware and CRKD relation KD).

Every function takes tensors and returns a scalar tensor; none knows about configs or models, so each can be
checked on a tiny case whose value is computed by hand (``test/training/test_losses_*.py``).
``training.objective`` combines them per the experiment's ``loss:`` and ``distill:`` sections.
"""
