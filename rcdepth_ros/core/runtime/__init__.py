"""A live stream into frames: time matching, caches, the keep-latest slot, the frame pipeline, statistics."""
