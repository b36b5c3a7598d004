"""An example vlae-bench plugin: an MLP VAE (``mlp-vae``), a codec (``zlib-bits``) and a
metric (``foreground-iou``), joined to the suite through entry points (pyproject.toml)."""
