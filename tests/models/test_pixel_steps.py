"""The cached, pixel-by-pixel PixelCNN (vlae_models/layers/pixel_steps.py): its parameters at
every pixel equal the one-pass evaluation's bit for bit, and both equal the network's own
forward to float rounding."""

from __future__ import annotations

import pytest
import torch
from conftest import stepped_params

from vlae_models.layers.masked import LocalPixelCNN
from vlae_models.layers.pixel_steps import PixelSteps, pixelcnn_params

CONFIGS = {
    "mnist_paper": dict(in_channels=1, cond_channels=4, n_layers=6, filters=12, kernel_size=3),
    "rgb_sequential_centred": dict(in_channels=3, cond_channels=2, n_layers=2, filters=6,
                                   n_out_params=4, centre_inputs=True),
    "rgb_joint_5x5_unconditional": dict(in_channels=3, n_layers=3, filters=6, kernel_size=5,
                                        channel_order="joint", n_res_blocks=1),
    "factorised_1x1_no_blocks": dict(in_channels=1, cond_channels=2, n_layers=2, filters=4,
                                     kernel_size=1, n_res_blocks=0),
}  # fmt: skip


@pytest.mark.parametrize("name", CONFIGS)
def test_every_step_equals_the_one_pass_bit_for_bit(name: str) -> None:
    torch.manual_seed(0)
    net = LocalPixelCNN(**CONFIGS[name]).eval()
    b, c, h, w = 3, net.in_channels, 9, 11
    x = torch.randint(0, 2, (b, c, h, w)).float()
    cond = torch.randn(b, net.cond_channels, h, w) if net.cond_channels else None
    one_pass = pixelcnn_params(net, x, cond, chunk=2)  # chunking the batch changes nothing
    assert torch.equal(stepped_params(net, x, cond), one_pass)
    with torch.no_grad():
        torch.testing.assert_close(one_pass, net(x, cond), rtol=0, atol=2e-5)


def test_a_missing_or_stray_conditioning_map_is_refused():
    conditional = LocalPixelCNN(**CONFIGS["mnist_paper"])
    with pytest.raises(ValueError, match="expected cond of shape"):
        PixelSteps(conditional, None, (2, 1, 5, 5))
    with pytest.raises(ValueError, match="expected cond of shape"):
        PixelSteps(conditional, torch.zeros(2, 3, 5, 5), (2, 1, 5, 5))
    with pytest.raises(ValueError, match="cond_channels=0"):
        PixelSteps(LocalPixelCNN(in_channels=1), torch.zeros(2, 4, 5, 5), (2, 1, 5, 5))
    with pytest.raises(ValueError, match="channels"):
        PixelSteps(conditional, torch.zeros(2, 4, 5, 5), (2, 3, 5, 5))
