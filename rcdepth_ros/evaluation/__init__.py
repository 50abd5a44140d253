"""
Scoring depth against lidar: one place for every caller, above ``core`` and ``data``.

``metrics`` (the protocol of method.md section 4), ``frames`` (one frame: lidar ground truth, the field of view,
its metrics), ``datasets`` (a model over a data set's frames: ``rcdepth eval``, ``training.evaluate``, the table)
and ``bags`` (the node's pipeline over a bag: ``rcdepth eval-bag``, the demo). ``rcdepth_eval_node`` scores live
frames with ``frames`` too, so the three paths score a frame identically.
"""
