"""cnnc.runtime."""
