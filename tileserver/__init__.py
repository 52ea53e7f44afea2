"""tileserver: serve neural-compressed whole-slide images to DeepZoom and IIIF viewers.

Importing the package registers our tile decoder with tifffile, so tifffile and tiffslide
read tileserver-ntiff files.
"""
from tileserver.format.tiffplugin import register as _register_tifffile_decoder

__version__ = "0.1.0"
_register_tifffile_decoder()
