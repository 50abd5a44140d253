"""Small building blocks shared by the encoders, fusion modules and decoders."""

import torch
from torch import nn
import torch.nn.functional as F

ACTIVATIONS = {'relu': nn.ReLU, 'relu6': nn.ReLU6, 'elu': nn.ELU, 'none': nn.Identity}


def activation(name):
    """Return a fresh activation module by name (relu, relu6, elu, none)."""
    return ACTIVATIONS[name]()


class ConvBNAct(nn.Sequential):
    """Convolution (no bias) + BatchNorm + activation, padding ``dilation * (k - 1) / 2`` (same size at stride 1)."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, groups=1, dilation=1, act='relu'):
        """Build the three layers (named ``0``, ``1``, ``2``, as torchvision's ConvBNReLU)."""
        padding = dilation * (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation=dilation, groups=groups,
                      bias=False),
            nn.BatchNorm2d(out_channels),
            activation(act))


class SeparableConv(nn.Sequential):
    """Depthwise 3x3 (optionally dilated) + BN + act, then pointwise 1x1 + BN + act."""

    def __init__(self, in_channels, out_channels, dilation=1, act='relu'):
        """Build the depthwise and pointwise stages."""
        super().__init__(
            ConvBNAct(in_channels, in_channels, 3, groups=in_channels, dilation=dilation, act=act),
            ConvBNAct(in_channels, out_channels, 1, act=act))


class SparseConv(nn.Module):
    """
    Sparsity-invariant convolution (Uhrig et al.): convolve only valid pixels and renormalise by their count.

    ``forward(x, mask)`` returns the features and the dilated mask (max-pooled by the kernel size). The valid-pixel
    count is an average pool of the mask times the kernel area, so there is no fixed weight in the state dict.
    """

    def __init__(self, in_channels, out_channels, kernel_size, act='elu'):
        """Build the convolution (no bias: the bias is added after renormalising)."""
        super().__init__()
        self.kernel_size = kernel_size
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.act = activation(act)

    def forward(self, x, mask):
        """Return (features, mask) after one sparse convolution."""
        k, pad = self.kernel_size, self.kernel_size // 2
        x = self.conv(x * mask)
        count = F.avg_pool2d(mask, k, 1, pad, count_include_pad=True) * float(k * k)
        # A window without a valid pixel has count 0 and x exactly 0. The divisor is floored at 0.5 (a valid count
        # is >= 1): 0 / 0.5 = 0 in every precision, where the former ``count + 1e-8`` is 0 in float16 (1e-8
        # underflows) and made 0 / 0 = NaN everywhere away from the radar. In float32 both give the same bits.
        x = x / count.clamp_min(0.5) + self.bias.view(1, -1, 1, 1)
        return self.act(x), F.max_pool2d(mask, k, 1, pad)


def upsample2(x):
    """Return ``x`` upsampled by 2 with nearest neighbour (exact for the multiple-of-32 sizes used here)."""
    return F.interpolate(x, scale_factor=2.0, mode='nearest')
