"""tileserver: serve neural-compressed whole-slide images to DeepZoom and IIIF viewers."""
__version__ = "0.1.0"
