"""AdamW and the polynomial learning-rate decay of the LiRCDepth / CaFNet line (to ``end_factor * lr``)."""

import torch
from torch.optim.lr_scheduler import LRScheduler


class PolynomialDecayLR(LRScheduler):
    """
    ``lr(step) = (base - end) * (1 - step / total_steps) ** power + end`` with ``end = end_factor * base``.

    Stepped once per optimiser step; after ``total_steps`` the rate stays at ``end``. Its state is plain numbers,
    so it goes into the resume state unchanged.
    """

    def __init__(self, optimizer, total_steps, power=0.9, end_factor=0.1, last_epoch=-1):
        """Keep the schedule; ``total_steps`` >= 1."""
        self.total_steps = max(int(total_steps), 1)
        self.power = float(power)
        self.end_factor = float(end_factor)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        """Return the rates of the current step."""
        progress = min(self.last_epoch, self.total_steps) / self.total_steps
        factor = (1.0 - self.end_factor) * (1.0 - progress) ** self.power + self.end_factor
        return [base * factor for base in self.base_lrs]


def build_optimizer(parameters, train_cfg):
    """Return AdamW over ``parameters`` (those requiring grad) with the run's lr, weight decay and eps."""
    params = [p for p in parameters if p.requires_grad]
    return torch.optim.AdamW(params, lr=train_cfg.lr, weight_decay=train_cfg.weight_decay, eps=train_cfg.adam_eps)


def build_scheduler(optimizer, train_cfg, total_steps):
    """Return the PolynomialDecayLR of the run."""
    return PolynomialDecayLR(optimizer, total_steps, train_cfg.poly_power, train_cfg.end_lr_factor)
