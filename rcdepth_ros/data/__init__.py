"""Data sets behind one sample format: Astyx HiRes2019, nuScenes, ZJU-4DRadarCam and synthetic scenes."""
