"""The faster evaluation paths give the eager numbers: torch.compile to float tolerance, and
reduced-precision autocast only in the networks (likelihoods stay float32)."""

from __future__ import annotations

import pytest
import torch

from vlae_models.core import build
from vlae_models.evaluate import evaluate


def _pixels(n: int = 16) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return (torch.rand(n, 1, 28, 28, generator=gen) < 0.3).to(torch.uint8)


def _iwae(model, compile: bool = False, dtype: str = "fp32") -> dict:
    (row,) = evaluate(model, _pixels(), iw_samples=64, seed=3, mutual_info=False,
                      compile=compile, dtype=dtype)  # fmt: skip
    return row


def test_compiled_beta_vae_gives_the_eager_iwae_to_float_tolerance():
    torch.manual_seed(0)
    eager = _iwae(build("beta-vae"))
    torch.manual_seed(0)
    compiled = _iwae(build("beta-vae"), compile=True)
    assert compiled["compiled"] is True and "compiled" not in eager
    for key in ("nll_nats", "neg_elbo_nats", "kl_nats", "distortion_nats"):
        assert compiled[key] == pytest.approx(eager[key], rel=1e-5), key


@pytest.mark.slow
def test_compiled_vlae_gives_the_eager_iwae_to_float_tolerance():
    torch.manual_seed(0)
    eager = _iwae(build("vlae"))
    torch.manual_seed(0)
    compiled = _iwae(build("vlae"), compile=True)
    assert compiled["nll_nats"] == pytest.approx(eager["nll_nats"], rel=1e-5)


def test_bf16_autocast_is_recorded_and_stays_near_fp32():
    torch.manual_seed(0)
    model = build("beta-vae")
    full, half = _iwae(model), _iwae(model, dtype="bf16")
    assert half["dtype"] == "bf16" and "dtype" not in full
    assert half["nll_nats"] == pytest.approx(full["nll_nats"], rel=0.02)  # bf16's 8 bits


def test_an_unknown_dtype_is_refused():
    from vlae_models.core import ModelError

    with pytest.raises(ModelError, match="dtype must be one of"):
        _iwae(build("beta-vae"), dtype="int8")
