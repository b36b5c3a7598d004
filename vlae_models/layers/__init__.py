"""Reusable building blocks for the latent-variable models.

Each module is self-contained; import from it directly, for example::

    from vlae_models.layers.masked import LocalPixelCNN
    from vlae_models.layers.flows import AutoregressiveFlowPrior

- ``masked``: masked convolutions and a PixelCNN decoder with a small, measured receptive field.
- ``pixel_steps``: that decoder run one pixel at a time with its activations kept (sampling,
  bits-back decoding), and the one-pass evaluation that gives the same numbers bit for bit.
- ``flows``: MADE and the autoregressive-flow (AF) prior of the Variational Lossy Autoencoder.
"""
