"""ngixi-build: build, check, precompile, sign and load WebAssembly guests for Ngixi."""

__version__ = "0.1.0"
