"""The tileserver-ntiff container (docs/FORMAT.md): payload header, metadata, writer, reader."""
from tileserver.format.metadata import COMPRESSION_TAG, FORMAT_VERSION, Level, SlideMetadata
from tileserver.format.reader import NeuralTiff, is_neural_tiff
from tileserver.format.writer import NeuralTiffWriter

__all__ = [
    "COMPRESSION_TAG",
    "FORMAT_VERSION",
    "Level",
    "SlideMetadata",
    "NeuralTiff",
    "NeuralTiffWriter",
    "is_neural_tiff",
]
