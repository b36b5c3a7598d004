"""A small MLP VAE for binarized MNIST: 784 -> hidden -> z -> hidden -> 784 Bernoulli logits."""

import torch
from torch import nn

from benchmarks import (
    LatentModel,
    ModelConfig,
    ModelOutput,
    compress_vectors,
    config_dataclass,
    decompress_vectors,
    likelihood_from_config,
)


@config_dataclass
class MLPVAEConfig(ModelConfig):  # in_channels, image_size and likelihood come from the base
    latent_dim: int = 16
    hidden: int = 256


class MLPVAE(LatentModel):
    """MLP VAE: Gaussian posterior, N(0, I) prior, Bernoulli decoder."""

    config_class = MLPVAEConfig

    def __init__(self, config: MLPVAEConfig) -> None:
        super().__init__()
        self.config, self.likelihood = config, likelihood_from_config(config)
        pixels, h, d = config.in_channels * config.image_size**2, config.hidden, config.latent_dim
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(pixels, h), nn.SiLU(),
                                     nn.Linear(h, 2 * d))  # fmt: skip
        self.decoder = nn.Sequential(nn.Linear(d, h), nn.SiLU(), nn.Linear(h, pixels))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def posterior(self, x):
        mean, log_std = self.encoder(x).chunk(2, dim=1)
        return mean, log_std.exp()

    def decode(self, z):
        c, s = self.config.in_channels, self.config.image_size
        return self.decoder(z).view(-1, c, s, s)  # Bernoulli logits

    def forward(self, x) -> ModelOutput:
        mean, std = self.posterior(x)
        z = mean + std * torch.randn_like(std)
        distortion = -self.likelihood.log_prob(self.decode(z), x)  # nats per example
        rate = (0.5 * (mean**2 + std**2 - 1) - std.log()).sum(1)  # KL(q(z|x) || N(0, I))
        return ModelOutput(distortion=distortion, rate=rate)

    def reconstruct(self, x):
        return self.likelihood.mean(self.decode(self.posterior(x)[0]))

    def sample(self, n: int, mode: str = "mean"):
        params = self.decode(torch.randn(n, self.config.latent_dim, device=self.device))
        return self.likelihood.mean(params) if mode == "mean" else self.likelihood.sample(params)

    def log_importance_weights(self, x, k: int):  # for the IWAE bound
        mean, std = self.posterior(x)
        z = mean.unsqueeze(1) + std.unsqueeze(1) * torch.randn(len(x), k, mean.shape[1],
                                                               device=x.device)  # fmt: skip
        log_q = torch.distributions.Normal(mean.unsqueeze(1), std.unsqueeze(1)).log_prob(z)
        log_p = torch.distributions.Normal(0.0, 1.0).log_prob(z)
        log_px = self.likelihood.log_prob(self.decode(z.flatten(0, 1)), x.repeat_interleave(k, 0))
        return log_px.view(len(x), k) + (log_p - log_q).sum(-1)

    def compress(self, x):  # real bits: the posterior means under the N(0, I) prior
        mean, std = self.posterior(x)
        return {"strings": compress_vectors(mean, std), "shape": list(mean.shape)}

    def decompress(self, strings, shape):
        z = decompress_vectors(strings, shape, self.device)
        return {"x_hat": self.likelihood.mean(self.decode(z))}
