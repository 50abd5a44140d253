"""
Fast validation during training: the student at model resolution against the lidar GT at model resolution.

This only steers training (curves, the best-by-validation checkpoint). The numbers of the tables come from
``rcdepth eval`` / ``rcdepth_ros.evaluation``: the protocol of ``../shared/docs/method.md`` section 4 at the
ORIGINAL image resolution, through the same inference engine as the node. Both use ``evaluation.metrics``.
"""

import contextlib

from rcdepth_ros.evaluation.metrics import MetricsAccumulator
import torch


def validate(model, loader, device, autocast=None, channels_last=True, caps=(50.0, 70.0, 80.0)):
    """
    Return (MetricsResult, first batch dict for the sample figure) of ``model`` over ``loader``.

    The model is put in eval mode for the pass and back in its previous mode afterwards.
    """
    was_training = model.training
    model.eval()
    accumulator = MetricsAccumulator(caps)
    first = None
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    try:
        with torch.no_grad(), (autocast() if autocast else contextlib.nullcontext()):
            for batch in loader:
                image = batch['image'].to(device).contiguous(memory_format=fmt)
                radar = batch['radar'].to(device).contiguous(memory_format=fmt)
                depth = model(image, radar)['depth'].float().cpu().numpy()
                gt = batch['depth_gt'].numpy()
                for i in range(depth.shape[0]):
                    accumulator.add(depth[i, 0], gt[i, 0], batch['frame_id'][i])
                if first is None:
                    first = {'image': batch['image'].numpy(), 'radar_raw': batch['radar_raw'].numpy(),
                             'gt': gt[:, 0], 'pred': depth[:, 0], 'frame_id': list(batch['frame_id'])}
    finally:
        model.train(was_training)
    return accumulator.result(), first
