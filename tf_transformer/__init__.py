"""tf-transformer: the Transformer of "Attention Is All You Need" as Keras 3 layers."""
