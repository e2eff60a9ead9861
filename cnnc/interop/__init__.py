"""cnnc.interop."""
