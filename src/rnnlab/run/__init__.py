"""One run from a composed config: pre-flight checks, assembly, training and reporting."""
