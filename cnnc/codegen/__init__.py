"""cnnc.codegen."""
