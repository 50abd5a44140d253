"""Pictures for people: colour maps of depth-like images and contact sheets of frames."""
