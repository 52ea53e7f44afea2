"""Codec ids written in payload headers. Never renumber: files on disk carry them."""
JPEG = 1
JPEGXL = 2
LEARNED = 3  # CompressAI hyperprior bytestrings (tileserver.codecs.learned)
SR4 = 4  # 4x-downscaled patch restored by a super-resolution enhancer (tileserver.codecs.sr4)
