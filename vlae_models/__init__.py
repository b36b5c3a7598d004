"""Latent-variable image models behind one protocol (see ``vlae_models.core``)."""
