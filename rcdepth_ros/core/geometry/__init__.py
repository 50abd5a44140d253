"""Where points go: rigid transforms, projection and z-buffering, the radar image, the model input, extrinsics."""
