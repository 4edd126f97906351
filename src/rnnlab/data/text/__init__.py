"""The language model's text pipeline: reading and preprocessing, tokens, the vocabulary, the datamodule."""
