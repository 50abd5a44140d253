"""The engine's choices by name, without importing torch (the node's parameter table lists them at import)."""

BACKENDS = ('torch', 'onnxruntime')
PRECISIONS = ('fp32', 'fp16', 'bf16', 'int8')
PREPROCESS_MODES = ('auto', 'host', 'device')
