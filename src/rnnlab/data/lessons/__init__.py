"""The course lessons' small datasets (sine, hello, points, diabetes, MNIST, synthetic sequences)."""
