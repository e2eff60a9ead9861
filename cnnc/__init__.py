"""cnnc: a compiler for convolutional networks written in the small `.cnn` language."""

from .errors import CnncError

__version__ = "0.1.0"

__all__ = ["CnncError", "__version__"]
