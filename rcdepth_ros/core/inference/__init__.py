"""A frame through a model: the inference engine, Grad-CAM saliency, and the model shipped with the package."""
