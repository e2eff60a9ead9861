"""The .cnn grammar, shipped inside the package as cnnc.grammars."""
