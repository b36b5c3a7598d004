"""A :class:`LocalPixelCNN` run one pixel at a time with its activations kept: cached decoding.

Drawing or decoding an image pixel by pixel pays one network evaluation per pixel. Running the
whole network on the pixel's window each time costs about half a 28 x 28 pass per pixel. The
two-stack layout needs far less (the idea of Ramachandran et al. 2017, "Fast Generation for
Convolutional Autoregressive Models"):

* the vertical stack of row r reads only image rows above r, so all its layers, for the whole
  row, are computed once when the row starts (:meth:`PixelSteps.start_row`), together with the
  horizontal stack's per-row terms (bias, the conditioning map, the vertical-to-horizontal
  link);
* the horizontal stack, the 1 x 1 blocks and the output at (r, c) then read only the current
  row's activations at columns c - k//2 .. c of each layer, which are kept
  (:meth:`PixelSteps.pixel`).

Same numbers on both sides. Bits-back coding needs the encoder (every pixel known, one pass:
:func:`pixelcnn_params`) and the decoder (one pixel at a time) to compute the same logits bit
for bit. A library convolution cannot promise that: its algorithm, and so its rounding, depends
on the shape it is given. Here every linear map is elementwise products summed in one fixed
order (a running sum, :func:`_sum_taps`), which IEEE arithmetic rounds the same whatever
the tensor's size; the one-pass and the stepped evaluations are the same functions on
different slices. ELU is the one exception: a vectorised exp and the scalar one used for a
tensor's tail may differ in the last bit, so for a float32 (or narrower) network it is taken
in float64 and rounded to the network's dtype, where the two agree unless a value falls
within 2**-29 of a rounding boundary; a float64 network gets no such margin. The argument
is the CPU's: a CUDA cumsum sums in an order that depends on the shape, so the bits-back
coder that relies on the equality runs on the CPU.
``tests/models/test_pixel_steps.py`` checks the equality on whole images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vlae_models.layers.masked import LocalPixelCNN, _FixedMaskConv2d


def _elu(t: Tensor) -> Tensor:
    """ELU, taken in float64 and rounded back (see the module docstring)."""
    return F.elu(t.double()).to(t.dtype)


def _sum_taps(products: Tensor) -> Tensor:
    """(..., O, K) -> (..., O): a running sum over K, one term after another (PyTorch's CPU
    cumsum is that loop, in a float64 accumulator), so the order never depends on the shape."""
    return products.cumsum(-1)[..., -1]


@dataclass(frozen=True)
class _Linear:
    """A (masked) convolution as taps: offsets (dy, dx) from the output pixel, the weights as
    an (out_channels, taps * in_channels) matrix, and the bias."""

    taps: tuple[tuple[int, int], ...]
    weight: Tensor
    bias: Tensor | None
    one_run: bool  # the taps are consecutive pixels of one row

    @classmethod
    def of(cls, conv: nn.Conv2d) -> _Linear:
        weight = conv.weight.detach()
        if isinstance(conv, _FixedMaskConv2d):
            weight = weight * conv.mask
        kh, kw = weight.shape[2:]
        used = weight.abs().amax(dim=(0, 1)).nonzero().tolist() or [[kh // 2, kw // 2]]
        taps = tuple((dy - kh // 2, dx - kw // 2) for dy, dx in used)
        matrix = torch.cat([weight[:, :, dy + kh // 2, dx + kw // 2] for dy, dx in taps], 1)
        one_run = all(dy == taps[0][0] and dx == taps[0][1] + i for i, (dy, dx) in enumerate(taps))
        bias = None if conv.bias is None else conv.bias.detach()
        return cls(taps, matrix, bias, one_run)

    def __call__(self, inputs: Tensor, plus: Tensor | None = None) -> Tensor:
        """inputs (..., taps * in_channels) -> (..., out_channels), plus ``plus`` (which then
        holds the bias) or the bias."""
        out = _sum_taps(inputs[..., None, :] * self.weight)
        plus = self.bias if plus is None else plus
        return out if plus is None else out + plus

    def plus_bias(self, terms: Tensor | None) -> Tensor | None:
        """Precomputed terms with this map's bias folded in (one add less a step)."""
        if terms is None or self.bias is None:
            return self.bias if terms is None else terms
        return self.bias + terms

    def gather(self, padded: Tensor, pad: int, rows: slice, cols: slice) -> Tensor:
        """Each tap's inputs for the outputs at rows x cols, (B, R, W, taps * C); ``padded``
        is (B, pad + H, pad + W + pad, C): zero rows above, zero columns either side."""
        r, c = rows.start + pad, cols.start + pad
        if self.one_run and rows.stop - rows.start == 1 == cols.stop - cols.start:
            (dy, first), last = self.taps[0], self.taps[-1][1]
            return padded[:, r + dy, c + first : c + last + 1].reshape(len(padded), 1, 1, -1)
        stop_r, stop_c = rows.stop + pad, cols.stop + pad
        views = [padded[:, r + dy : stop_r + dy, c + dx : stop_c + dx] for dy, dx in self.taps]
        return torch.stack(views, -2).flatten(-2)


class PixelSteps:
    """The state of one batch of images being drawn (or decoded) by ``net`` in raster order.

    Use: ``start_row(r)`` at the start of each row, then for each pixel ``pixel(r, c)`` (its
    parameters, (B, C, P)) and ``write(r, c, channels, values)`` once the values are known.
    """

    def __init__(self, net: LocalPixelCNN, cond: Tensor | None, shape) -> None:
        batch, channels, height, width = shape
        if channels != net.in_channels:
            raise ValueError(f"shape has {channels} channels, the network takes {net.in_channels}")
        if net.cond_channels and (
            cond is None or tuple(cond.shape) != (batch, net.cond_channels, height, width)
        ):
            got = None if cond is None else tuple(cond.shape)
            raise ValueError(f"expected cond of shape {(batch, net.cond_channels, height, width)},"
                             f" got {got}")  # fmt: skip
        if not net.cond_channels and cond is not None:
            raise ValueError("this LocalPixelCNN was built with cond_channels=0")
        param = next(net.parameters())
        self.net, self.shape = net, tuple(shape)
        self.pad = pad = net.kernel_size // 2
        self.dtype, self.device = param.dtype, param.device
        self.v_layers = [_Linear.of(c) for c in net.v_convs]
        self.h_layers = [_Linear.of(c) for c in net.h_convs]
        self.links = [_Linear.of(c) for c in net.v_to_h]
        self.blocks = [(_Linear.of(b.conv1), _Linear.of(b.conv2)) for b in net.res_blocks]
        self.output = _Linear.of(net.out)

        def buffer(c: int) -> Tensor:
            size = (batch, pad + height, pad + width + pad, c)
            return torch.zeros(size, dtype=self.dtype, device=self.device)

        self.x = buffer(channels)
        self.v = [buffer(net.v_convs[0].out_channels) for _ in self.v_layers]
        self.h = [buffer(net.h_convs[0].out_channels) for _ in self.h_layers]
        # per layer, (B, H, W, F): everything the horizontal stack adds that is known per row
        self.row_terms = [torch.zeros_like(h[:, pad:, pad : pad + width]) for h in self.h]
        self._cond_terms(cond)

    def _cond_terms(self, cond: Tensor | None) -> None:
        """The conditioning map's 1 x 1 terms of every layer, for the whole image at once, with
        the biases they are added to."""
        net = self.net
        c = None if cond is None else cond.to(self.device, self.dtype).permute(0, 2, 3, 1)

        def terms(convs, layers):
            maps = [None if c is None else _Linear.of(m)(c) for m in convs] or [None] * len(layers)
            return [layer.plus_bias(t) for layer, t in zip(layers, maps, strict=True)]

        self.v_plus = terms(net.cond_v, self.v_layers)
        self.h_plus = terms(net.cond_h, self.h_layers)
        self.block_plus = terms([b.cond for b in net.res_blocks if b.cond is not None],
                                [conv1 for conv1, _ in self.blocks])  # fmt: skip

    def _inputs(self, values: Tensor) -> Tensor:
        return 2.0 * values - 1.0 if self.net.centre_inputs else values

    def start_row(self, row: int | slice) -> None:
        """The vertical stack and the horizontal stack's per-row terms of row ``row`` (or of
        a slice of rows), from the image rows above it."""
        rows = row if isinstance(row, slice) else slice(row, row + 1)
        pad, width = self.pad, self.shape[3]
        cols, out_r, out_c = (
            slice(0, width),
            slice(rows.start + pad, rows.stop + pad),
            slice(pad, pad + width),
        )
        below = self.x
        for layer, (conv, link) in enumerate(zip(self.v_layers, self.links, strict=True)):
            new = _elu(conv(conv.gather(below, pad, rows, cols), _rows(self.v_plus[layer], rows)))
            self.v[layer][:, out_r, out_c] = new if layer == 0 else below[:, out_r, out_c] + new
            terms = link(new)
            h_plus = _rows(self.h_plus[layer], rows)
            self.row_terms[layer][:, rows] = terms if h_plus is None else h_plus + terms
            below = self.v[layer]

    def pixel(self, row: int, col: int) -> Tensor:
        """The parameters of pixel (row, col), (B, C, P), from the pixels written before it."""
        return self._horizontal(slice(row, row + 1), slice(col, col + 1))[:, :, :, 0, 0]

    def _horizontal(self, rows: slice, cols: slice) -> Tensor:
        """Parameters (B, C, P, R, W) at rows x cols: the horizontal stack, blocks and output."""
        pad = self.pad
        out_r, out_c = (
            slice(rows.start + pad, rows.stop + pad),
            slice(cols.start + pad, cols.stop + pad),
        )
        before = self.x
        for layer, conv in enumerate(self.h_layers):
            pre = conv(conv.gather(before, pad, rows, cols), self.row_terms[layer][:, rows, cols])
            h = _elu(pre) if layer == 0 else before[:, out_r, out_c] + _elu(pre)
            self.h[layer][:, out_r, out_c] = h
            before = self.h[layer]
        for (conv1, conv2), plus in zip(self.blocks, self.block_plus, strict=True):
            a = conv1(_elu(h), _region(plus, rows, cols))
            h = h + conv2(_elu(a))
        params = self.output(_elu(h))  # (B, R, W, C * P)
        b, r, w, _ = params.shape
        return params.view(b, r, w, self.shape[1], -1).permute(0, 3, 4, 1, 2)

    def write(self, row: int, col: int, channels: slice, values: Tensor) -> None:
        """Set pixel (row, col)'s ``channels`` to ``values`` (B, len(channels)), in [0, 1]."""
        self.x[:, row + self.pad, col + self.pad, channels] = self._inputs(values.to(self.dtype))


def _rows(terms: Tensor | None, rows: slice) -> Tensor | None:
    """Rows of a per-pixel term map (B, H, W, F); a bias (F,) applies everywhere."""
    return terms if terms is None or terms.dim() == 1 else terms[:, rows]


def _region(terms: Tensor | None, rows: slice, cols: slice) -> Tensor | None:
    return terms if terms is None or terms.dim() == 1 else terms[:, rows, cols]


@torch.no_grad()
def pixelcnn_params(net: LocalPixelCNN, x: Tensor, cond: Tensor | None = None,
                    chunk: int = 16) -> Tensor:  # fmt: skip
    """``net(x, cond)`` in one pass with :class:`PixelSteps`' arithmetic: (B, C, P, H, W), equal
    bit for bit to what stepping pixel by pixel through the same x gives."""
    outs = []
    for start in range(0, len(x), chunk):
        part = x[start : start + chunk]
        part_cond = None if cond is None else cond[start : start + chunk]
        steps = PixelSteps(net, part_cond, part.shape)
        pad, (_, _, height, width) = steps.pad, part.shape
        steps.x[:, pad : pad + height, pad : pad + width] = steps._inputs(
            part.to(steps.dtype).permute(0, 2, 3, 1)
        )
        steps.start_row(slice(0, height))
        outs.append(steps._horizontal(slice(0, height), slice(0, width)))
    return torch.cat(outs)


# sample_fn(params) -> (values, log_prob): params (B, C_step, P), values (B, C_step), log_prob (B,)
SampleFn = Callable[[Tensor], tuple[Tensor, Tensor]]


@torch.no_grad()
def sample_autoregressive(
    model: LocalPixelCNN, cond: Tensor | None, shape: tuple[int, int, int, int], sample_fn: SampleFn
) -> tuple[Tensor, Tensor]:
    """Draw x in raster order; return x (B, C, H, W) and log p(x | cond) (B,) in nats.

    ``sample_fn(params)`` gets the parameters of one step, shape (B, C_step, P), and returns the
    sampled values (B, C_step) and their log-probabilities summed over C_step, shape (B,). A step
    is one channel (``channel_order="sequential"``: C_step = 1, R then G then B) or a whole
    pixel ("joint": C_step = C). The returned log-probability is the sum over steps, which
    equals the teacher-forced likelihood of a parallel ``model(x, cond)`` pass.
    """
    batch, channels, height, width = shape
    if channels != model.in_channels:
        raise ValueError(f"shape has {channels} channels, model expects {model.in_channels}")
    state = PixelSteps(model, cond, shape)
    x = torch.zeros(shape, dtype=state.dtype, device=state.device)
    log_prob = torch.zeros(batch, dtype=state.dtype, device=state.device)
    if model.channel_order == "sequential":
        steps = [slice(c, c + 1) for c in range(channels)]
    else:
        steps = [slice(0, channels)]
    for row in range(height):
        state.start_row(row)
        for col in range(width):
            for step in steps:
                values, step_log_prob = sample_fn(state.pixel(row, col)[:, step])
                state.write(row, col, step, values)
                x[:, step, row, col] = values.to(x.dtype)
                log_prob += step_log_prob
    return x, log_prob
