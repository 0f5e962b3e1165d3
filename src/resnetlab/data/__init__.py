"""Data: sources decoded once into a uint8 cache, batched on the device, augmented as tensors.

Import from the modules (``resnetlab.data.sources.load_data``, ``resnetlab.data.loader``):
this package keeps its import light so ``resnetlab --help`` never loads PIL or torch.
"""
