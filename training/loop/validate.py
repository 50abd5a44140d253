"""
Fast validation during training: the trained model at model resolution against the lidar GT at model resolution.

This only steers training (curves, the best-by-validation checkpoint). The numbers of the tables come from
``rcdepth eval`` / ``rcdepth_ros.evaluation``: the protocol of ``../shared/docs/method.md`` section 4 at the
ORIGINAL image resolution, through the same inference engine as the node. Both use ``evaluation.metrics``.
A model with lidar input (a cross-modal teacher) reads the batch's ``lidar`` channels and is scored on the rings
it did not read (``gt_key='depth_gt_heldout'``); the distillation gate scores students on the same pixels.
"""

import contextlib

from rcdepth_ros.evaluation.metrics import MetricsAccumulator
import torch


def validate(model, loader, device, autocast=None, channels_last=True, caps=(50.0, 70.0, 80.0), gt_key='depth_gt'):
    """
    Return (MetricsResult, first batch dict for the sample figure) of ``model`` over ``loader``.

    The model is put in eval mode for the pass and back in its previous mode afterwards.
    """
    was_training = model.training
    model.eval()
    accumulator = MetricsAccumulator(caps)
    first = None
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    reads_lidar = bool(getattr(model, 'lidar_channels', 0))
    try:
        with torch.no_grad(), (autocast() if autocast else contextlib.nullcontext()):
            for batch in loader:
                image = batch['image'].to(device).contiguous(memory_format=fmt)
                radar = batch['radar'].to(device).contiguous(memory_format=fmt)
                kwargs = {'lidar': batch['lidar'].to(device).contiguous(memory_format=fmt)} if reads_lidar else {}
                depth = model(image, radar, **kwargs)['depth'].float().cpu().numpy()
                gt = batch[gt_key].numpy()
                for i in range(depth.shape[0]):
                    accumulator.add(depth[i, 0], gt[i, 0], batch['frame_id'][i])
                if first is None:
                    first = {'image': batch['image'].numpy(), 'radar_raw': batch['radar_raw'].numpy(),
                             'gt': gt[:, 0], 'pred': depth[:, 0], 'frame_id': list(batch['frame_id'])}
    finally:
        model.train(was_training)
    return accumulator.result(), first
