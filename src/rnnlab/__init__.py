"""rnnlab: recurrent networks and classic PyTorch tutorials as Lightning tasks composed by Hydra.

Importing the package is cheap on purpose: torch and lightning are imported by the modules that
need them, so that composing a config (`scripts/train.py --cfg job`) never pays for them.
"""

__version__ = "0.1.0"
