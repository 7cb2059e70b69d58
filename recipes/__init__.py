"""The training recipes (run as scripts: ``accelerate launch recipes/fixed_cifar10.py``); tests import them as
``recipes.compare``."""
