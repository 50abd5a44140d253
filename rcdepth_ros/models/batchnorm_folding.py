"""
Fold eval-mode BatchNorm layers into the convolution just before them, for inference.

A BatchNorm right after a (transposed) convolution is an affine map per output channel, so it can be folded into
the convolution's weight and bias: one pass over the feature map less for every such pair (about a sixth of the
student's CPU time). Pairs are found structurally: consecutive ``Conv2d`` / ``ConvTranspose2d`` and ``BatchNorm2d``
children of an ``nn.Sequential``, and the named conv / BN attribute pairs of the EfficientNet-Lite, MBConv and
ResNet modules, whose forward applies the BN directly to the convolution's output. A BN after an activation
(BTS's upconv) stays. The folded BN becomes ``nn.Identity``, so module names (Grad-CAM layers) do not change.
Only for inference: the folded model has other state-dict keys and must not be trained or saved as a checkpoint.
"""

import copy

from rcdepth_ros.models.encoders import BasicBlock, EfficientNetLite, MBConvBlock, ResNet
import torch
from torch import nn

# class -> (conv attribute, BN attribute) pairs whose forward is bn(conv(x))
ATTRIBUTE_PAIRS = {
    EfficientNetLite: (('_conv_stem', '_bn0'),),
    MBConvBlock: (('_expand_conv', '_bn0'), ('_depthwise_conv', '_bn1'), ('_project_conv', '_bn2')),
    ResNet: (('conv1', 'bn1'),),
    BasicBlock: (('conv1', 'bn1'), ('conv2', 'bn2')),
}


@torch.no_grad()
def fold_conv_bn(conv, bn):
    """Fold ``bn`` (eval statistics) into ``conv`` in place; ``conv`` gains a bias if it had none."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias - bn.running_mean * scale
    weight = conv.weight
    if isinstance(conv, nn.ConvTranspose2d):
        # weight (in, out / groups, kh, kw): output channel g * out_per_group + j is weight[g * in_per_group + i, j]
        groups = conv.groups
        shaped = weight.view(groups, weight.shape[0] // groups, weight.shape[1], *weight.shape[2:])
        shaped.mul_(scale.view(groups, 1, weight.shape[1], 1, 1))
    else:
        weight.mul_(scale.view(-1, 1, 1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(scale)
    new_bias = bias * scale + shift
    conv.bias = nn.Parameter(new_bias, requires_grad=False)
    return conv


def _is_conv(module):
    return isinstance(module, (nn.Conv2d, nn.ConvTranspose2d))


def fuse_batch_norm(model, inplace=False):
    """
    Return ``model`` (a copy unless ``inplace``) in eval mode with every foldable BatchNorm folded; see module doc.

    The number of folded BNs is stored as ``model.folded_batch_norms``.
    """
    model = model if inplace else copy.deepcopy(model)
    model.eval()
    folded = 0
    for module in list(model.modules()):
        if isinstance(module, nn.Sequential):
            names = list(module._modules)
            for first, second in zip(names, names[1:]):
                conv, bn = module._modules[first], module._modules[second]
                if _is_conv(conv) and isinstance(bn, nn.BatchNorm2d):
                    fold_conv_bn(conv, bn)
                    module._modules[second] = nn.Identity()
                    folded += 1
        for conv_name, bn_name in ATTRIBUTE_PAIRS.get(type(module), ()):
            conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
            if _is_conv(conv) and isinstance(bn, nn.BatchNorm2d):
                fold_conv_bn(conv, bn)
                setattr(module, bn_name, nn.Identity())
                folded += 1
    model.folded_batch_norms = folded
    return model
