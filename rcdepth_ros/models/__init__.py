"""
Networks (XD-RCDepth student, LiRCDepth baseline, CaFNet-style teacher), their configuration and checkpoints.

Public API (stable; see each module's docstring):

- ``load_model_config(path_or_dict) -> (InputConfig, ModelConfig)``  (``config.py``)
- ``build_model(model_cfg, input_cfg, load_pretrained=True) -> DepthModel``  (``builder.py``; forward contract in
  ``base.py``)
- ``save_checkpoint(path, model, input_cfg, model_cfg, training=None)``,
  ``load_checkpoint(path, map_location='cpu') -> (model, input_cfg, model_cfg, meta)``  (``checkpoint.py``)
- ``bin_centers(num_bins, spacing, min_depth, max_depth)``  (``heads.py``)
- ``count_parameters``, ``count_macs``, ``measure_latency``  (``complexity.py``)
"""

from rcdepth_ros.models.builder import build_model
from rcdepth_ros.models.checkpoint import load_checkpoint, save_checkpoint
from rcdepth_ros.models.config import load_model_config, ModelConfig
from rcdepth_ros.models.heads import bin_centers

__all__ = ['bin_centers', 'build_model', 'load_checkpoint', 'load_model_config', 'ModelConfig', 'save_checkpoint']
