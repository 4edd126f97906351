"""Corpora, vocabularies, downloads and the batch samplers behind the datamodules."""
