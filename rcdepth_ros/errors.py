"""
The package's exception types: one family, each message naming the input and the problem.

Callers catch ``RcdepthError`` to handle any bad input the package detects (a node warns, counts and goes on);
the subclasses say which stage refused it.
"""


class RcdepthError(Exception):
    """Base class of every error the package raises on bad input, configuration or files."""


class ConversionError(RcdepthError, ValueError):
    """A ROS message cannot be converted to or from numpy (encoding, step, size, fields, calibration)."""


class RadarFormatError(RcdepthError, ValueError):
    """Radar points cannot be parsed (missing required fields, unreadable file, bad field mapping)."""


class ProjectionError(RcdepthError, ValueError):
    """Points, intrinsics or transforms that cannot be projected (bad shapes, singular or non-finite matrices)."""


class SyncError(RcdepthError, ValueError):
    """A message given to the synchroniser has no usable header stamp or names an unknown input."""


class ConfigError(RcdepthError, ValueError):
    """A configuration is invalid: unknown key, wrong type, out-of-range value."""


class CheckpointError(RcdepthError, ValueError):
    """A checkpoint is missing, truncated, not a checkpoint, or does not match its configuration."""


class DatasetError(RcdepthError, ValueError):
    """A data set file or frame is missing or corrupt; the message names the file and the frame."""


class BagError(RcdepthError, ValueError):
    """A rosbag2 file cannot be read or written as asked (missing topic, unknown type, bad path)."""


class MetricsError(RcdepthError, ValueError):
    """Depth maps that cannot be evaluated (shape mismatch, bad caps) or a metrics file that cannot be read."""


class ModelInputError(RcdepthError, ValueError):
    """Tensors given to a model have the wrong shape, channel count or size (sizes must be multiples of 32)."""


class ExportError(RcdepthError, RuntimeError):
    """An exported model (ONNX, TorchScript) cannot be written or does not reproduce the torch output."""


class FrameError(RcdepthError, ValueError):
    """
    A camera frame cannot be processed (no camera_info, image and camera_info sizes differ, undecodable image).

    ``reason`` is a short name a node counts it under in its diagnostics (e.g. ``no_camera_info``).
    """

    def __init__(self, message, reason='frame_error'):
        """Keep the message and the counter name."""
        super().__init__(message)
        self.reason = str(reason)


class OutputPathError(RcdepthError, ValueError):
    """An output path cannot be written: under a file, in a read-only place, a folder where a file is wanted."""


class TrainingError(RcdepthError, RuntimeError):
    """Training cannot go on: a non-finite loss, a run directory holding another experiment, a missing resume state."""
