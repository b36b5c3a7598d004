"""Reference codecs behind one protocol: classical (Pillow, zlib/bz2/lzma) and learned."""
