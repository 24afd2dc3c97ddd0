"""Kakuritsu ("probability") synapses: a bias-free linear map whose every synapse is active with
probability p, drawn independently per sample, per output unit and per input (UEFI-code/
Neuro_myKakuritsu; the package README's "The source").

    out[b, j] = sum_i m[b, j, i] * W[j, i] * x[b, i],    m ~ Bernoulli(p) i.i.d.,  no 1/p rescale

The backward pass ignores the mask (straight-through): the gradients are those of the dense
bias-free linear map, grad_x = g @ W and grad_W = g^T @ x. As in the original, the layer samples
whenever p < 1, in training and evaluation alike; p == 1 is exactly the dense matmul.

Two ways to sample the forward pass:

* ``"exact"`` draws every mask bit. A full [B, out, in] mask would be huge (64 x 1000 x 2048 is
  131M elements), so it is sampled in chunks of at most ``max_chunk_elements`` synapses, and the
  mask bits come from packed random words rather than one uniform float per synapse: on a CPU the
  random-number generator, not the arithmetic, is what limits speed.
* ``"gaussian"`` draws one normal variate per output instead: a moment-matched approximation
  whose mean and variance are right but whose distribution is not exactly that of the layer.

Masks come from torch's global RNG unless a ``generator`` is given, so restoring the RNG state
from a checkpoint reproduces a run.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Mode = Literal["exact", "gaussian"]
MODES: tuple[Mode, ...] = get_args(Mode)
# 2**21 synapses (an 8 MiB float32 buffer) keeps a chunk, its uint8 unpacking and W in a 32 MiB
# L3 cache: on the 2-core EPYC, 2**22 measured 1.6x slower for both benchmark heads, 2**20 no faster.
DEFAULT_MAX_CHUNK_ELEMENTS = 2**21

# Binary digits of p drawn for every packed word before compacting to the words still undecided
# (22% of them after 8 digits); compacting earlier measured slower, nonzero() being costly.
_DENSE_DIGITS = 8


def check_p(p: float) -> float:
    """Return p as a float, or raise ValueError unless 0 < p <= 1."""
    p = float(p)
    if not 0.0 < p <= 1.0:
        raise ValueError(f"p must be in (0, 1], got {p}")
    return p


def _check_mode(mode: str) -> Mode:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return mode  # type: ignore[return-value]


def _random_words(count: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """`count` int64 words of 64 uniformly random bits each.

    The full-range form of random_ is the cheapest source of random bits in torch: on a CPU it
    yields one 64-bit Mersenne-Twister draw per word, against one 32-bit draw per element for
    torch.rand or an 8-bit random_.
    """
    words = torch.empty(count, dtype=torch.int64, device=device)
    return words.random_(-(2**63), None, generator=generator)


def _packed_bernoulli(
    count: int, p: float, generator: torch.Generator | None, device: torch.device
) -> Tensor:
    """`count` int64 words whose 64 bits are i.i.d. Bernoulli(p), exactly for the float64 p.

    Bit-sliced comparison U < p, 64 lanes per word operation, with U's binary digits drawn from
    fresh random words: a lane is decided at the first digit where U and p differ, and lanes
    still tied once p's remaining digits are all zero have U >= p. A dyadic p = k / 2**m costs m
    random bits per synapse (p = 0.5: one). Any other p costs about 8.5, and a whole forward
    about 4x the time of p = 0.5: after _DENSE_DIGITS digits only the words that still hold a
    tied lane are carried on, and each further digit halves them.
    """
    rest = 2 * p  # exact in float64: each doubling moves p's next binary digit before the point
    u = _random_words(count, generator, device)
    if rest >= 1.0:
        rest -= 1.0
        less, tied = ~u, u
    else:
        less, tied = torch.zeros_like(u), u.bitwise_not_()
    alive: Tensor | None = None  # where in `less` the words of a compacted `tied` belong
    digits = 1
    while rest != 0.0:
        if digits >= _DENSE_DIGITS:
            keep = tied.nonzero().squeeze(1)
            if keep.numel() == 0:
                break
            alive = keep if alive is None else alive[keep]
            tied = tied[keep]
        rest *= 2
        not_u = _random_words(tied.numel(), generator, device).bitwise_not_()
        if rest >= 1.0:  # digit 1: tied lanes where U's digit is 0 are decided U < p
            rest -= 1.0
            decided = not_u.bitwise_and_(tied)
            if alive is None:
                less |= decided
            else:
                less[alive] |= decided
            tied ^= decided
        else:  # digit 0: tied lanes where U's digit is 1 are decided U > p
            tied &= not_u
        digits += 1
    return less


def _mask_(out: Tensor, p: float, generator: torch.Generator | None) -> Tensor:
    """Fill `out` (a flat float tensor, length a multiple of 8) with i.i.d. Bernoulli(p) zeros
    and ones.

    Bit k of packed byte g goes to element g + k * L (L = len / 8): any assignment of i.i.d.
    bits to synapses is valid, and this one unpacks with one broadcast shift over a leading axis
    of 8, all contiguous, then one uint8 -> float copy (a bool -> float copy is slower).
    """
    planes = out.view(8, -1)
    plane_size = planes.shape[1]
    words = _packed_bernoulli(-(-plane_size // 8), p, generator, out.device)
    packed = words.view(torch.uint8)[:plane_size]
    shifts = torch.arange(8, dtype=torch.uint8, device=out.device).unsqueeze(1)
    planes.copy_(torch.bitwise_right_shift(packed, shifts).bitwise_and_(1))
    return out


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _exact_forward(
    x: Tensor, weight: Tensor, p: float, generator: torch.Generator | None, max_chunk_elements: int
) -> Tensor:
    """Sample out = (m * W) x row by row, at most max(max_chunk_elements, in) synapses at a time.

    A chunk is a block of whole batch rows, or of output units within one row when a row alone
    exceeds the bound. Its mask is written into one float buffer reused by every chunk: fresh
    buffers cost page faults (2x slower measured on CPU). The contraction is one torch.mv per
    row: on CPU as fast as bmm or einsum with the default chunk, but with 2**22-element chunks
    those fall to a 3x slower batched matrix-vector path while mv does not.
    """
    batch, n_in = x.shape
    n_out = weight.shape[0]
    units = max(1, min(n_out, max_chunk_elements // n_in))
    rows = max(1, min(batch, max_chunk_elements // (units * n_in)))
    out = x.new_empty(batch, n_out)
    buffer = x.new_empty(_round_up(rows * units * n_in, 8))
    for row in range(0, batch, rows):
        n_rows = min(rows, batch - row)
        for unit in range(0, n_out, units):
            n_units = min(units, n_out - unit)
            size = n_rows * n_units * n_in
            _mask_(buffer[: _round_up(size, 8)], p, generator)
            masked = buffer[:size].view(n_rows, n_units, n_in)
            masked.mul_(weight[unit : unit + n_units])
            for r in range(n_rows):
                torch.mv(masked[r], x[row + r], out=out[row + r, unit : unit + n_units])
    return out


def _gaussian_forward(
    x: Tensor, weight: Tensor, p: float, generator: torch.Generator | None
) -> Tensor:
    """Moment-matched normal approximation of the exact layer (not exact in distribution).

    For fixed b, j the terms a_i = W[j, i] x[b, i] are gated independently, so the output has
    mean p * sum_i a_i and variance p (1 - p) * sum_i a_i**2; draw a normal with those moments.
    """
    mean = F.linear(x, weight).mul_(p)
    std = F.linear(x * x, weight * weight).mul_(p * (1 - p)).sqrt_()
    noise = torch.randn(mean.shape, generator=generator, dtype=x.dtype, device=x.device)
    return mean.addcmul_(std, noise)


class _KakuritsuFunction(torch.autograd.Function):
    """Sampled forward, dense straight-through backward."""

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        weight: Tensor,
        p: float,
        mode: Mode,
        generator: torch.Generator | None,
        max_chunk_elements: int,
    ) -> Tensor:
        ctx.save_for_backward(x, weight)
        if mode == "exact":
            return _exact_forward(x, weight, p, generator, max_chunk_elements)
        return _gaussian_forward(x, weight, p, generator)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        grad_x = grad @ weight if ctx.needs_input_grad[0] else None
        grad_weight = grad.t() @ x if ctx.needs_input_grad[1] else None
        return grad_x, grad_weight, None, None, None, None


def kakuritsu_linear(
    x: Tensor,
    weight: Tensor,
    p: float,
    mode: Mode = "exact",
    generator: torch.Generator | None = None,
    max_chunk_elements: int = DEFAULT_MAX_CHUNK_ELEMENTS,
) -> Tensor:
    """Kakuritsu linear map of x ([..., in]) by weight ([out, in]); returns [..., out].

    Every synapse is active with probability p (no 1/p rescale), independently per sample,
    output unit and input; gradients are the dense ones. p == 1 is F.linear(x, weight) itself.
    `mode` is "exact" or the cheap, approximate "gaussian" (see the module docstring);
    `max_chunk_elements` bounds the exact mode's extra memory: about 5.4 bytes per element for
    float32 (the float mask buffer, its uint8 unpacking, the packed random words).
    """
    p = check_p(p)
    mode = _check_mode(mode)
    if max_chunk_elements < 1:
        raise ValueError(f"max_chunk_elements must be positive, got {max_chunk_elements}")
    if p == 1.0:
        return F.linear(x, weight)
    flat = x.reshape(-1, x.shape[-1])
    out = _KakuritsuFunction.apply(flat, weight, p, mode, generator, max_chunk_elements)
    return out.view(*x.shape[:-1], weight.shape[0])


class KakuritsuLinear(nn.Module):
    """Bias-free linear layer with Kakuritsu synapses; weights start as U(-0.1, 0.1).

    `p` may be changed at any time (evaluation sets it to 1.0 for the deterministic network);
    there is no train/eval switch, because the original samples in evaluation too.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        p: float = 0.5,
        mode: Mode = "exact",
        max_chunk_elements: int = DEFAULT_MAX_CHUNK_ELEMENTS,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.p = p
        self.mode = _check_mode(mode)
        self.max_chunk_elements = max_chunk_elements
        self.weight = nn.Parameter(
            torch.empty(out_features, in_features, device=device, dtype=dtype)
        )
        self.reset_parameters()

    @property
    def p(self) -> float:
        return self._p

    @p.setter
    def p(self, value: float) -> None:
        self._p = check_p(value)

    def reset_parameters(self) -> None:
        nn.init.uniform_(self.weight, -0.1, 0.1)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return kakuritsu_linear(
            x, self.weight, self.p, self.mode, generator, self.max_chunk_elements
        )

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"p={self.p}, mode={self.mode!r}"
        )
