r"""DimeNet's bases: the smooth envelope, the radial Bessel basis and the 2D spherical Fourier-Bessel basis.

Gasteiger, Groß, Günnemann, *Directional Message Passing for Molecular Graphs*,
ICLR 2020, eq. 7-8, as computed by the authors' code and by
``torch_geometric.nn.models.dimenet`` (whose numbers ``tests/test_dimenetpp.py``
reproduces). With :math:`x = d / c` (c the cutoff) and :math:`p` = ``exponent + 1``:

.. math::
    u(x) &= \Big(\frac{1}{x} - \frac{(p+1)(p+2)}{2} x^{p-1} + p(p+2)\, x^p
            - \frac{p(p+1)}{2} x^{p+1}\Big)\, \mathbb{1}[x < 1] \\
    \mathrm{RBF}_n(d) &= u(x)\, \sin(f_n x), \qquad f_n = n\pi \text{ initially, trainable} \\
    \tilde u_{ln}(d) &= u(x)\, N_{ln}\, j_l(z_{ln} x), \qquad
        N_{ln} = \big(\tfrac12 j_{l+1}(z_{ln})^2\big)^{-1/2} \\
    Y_l(\alpha) &= \sqrt{\tfrac{2l+1}{4\pi}}\, P_l(\cos\alpha)

with :math:`z_{ln}` the n-th positive root of the spherical Bessel function
:math:`j_l`. The spherical basis of a triplet is
:math:`\mathrm{SBF}_{ln}(t) = \tilde u_{ln}(d_{kj})\, Y_l(\alpha_t)`; it is
never formed here: ``radial`` returns :math:`\tilde u` per edge [E, L, R] and
``angular`` returns :math:`Y` per triplet [T, L], and DimeNet++'s interaction
contracts the two after projecting :math:`\tilde u` per edge.

Where the authors' code (and so PyG) differs from the paper, this module
follows the code, so that weights carry over:

- :math:`u` contains the :math:`1/x` of :math:`\sin(n\pi x)/x`: right for the
  RBF, but the SBF then carries an extra :math:`1/x` that the paper does not have;
- the roots :math:`z_{ln}` are rounded to float32 (PyG stores them in a
  float32 array), and :math:`N_{ln}` is computed from the rounded roots;
- the envelope's mask is :math:`x < 1` (energies and forces are 0 at the cutoff
  either way: :math:`u(1) = u'(1) = u''(1) = 0`).

PyG evaluates each :math:`j_l` and :math:`Y_l` from a sympy closed form; here
:math:`j_l` comes from the upward recurrence
:math:`j_{l+1}(r) = \frac{2l+1}{r} j_l(r) - j_{l-1}(r)` (the same polynomials in
:math:`1/r`, evaluated in another order) and :math:`P_l` from Bonnet's
recurrence; both agree with PyG's to float64 round-off.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["Envelope", "RadialBesselBasis", "SphericalBesselRadial", "ZonalHarmonics", "spherical_bessel_roots"]


def _spherical_jn(order: int, r: np.ndarray) -> np.ndarray:
    """j_0..j_order at r > order by the upward recurrence (stable there); returns j_order."""
    previous, current = np.sin(r) / r, np.sin(r) / r**2 - np.cos(r) / r
    if order == 0:
        return previous
    for l in range(1, order):
        previous, current = current, (2 * l + 1) / r * current - previous
    return current


def spherical_bessel_roots(num_spherical: int, num_radial: int) -> np.ndarray:
    """The first ``num_radial`` positive roots of j_0 .. j_{num_spherical-1}, float64 [L, R].

    The roots of :math:`j_l` interlace those of :math:`j_{l-1}`, so each is
    bracketed by two consecutive roots of the previous order and found by
    bisection to float64 precision (the roots of :math:`j_0` are :math:`n\\pi`).
    """
    count = num_radial + num_spherical - 1
    roots = np.zeros((num_spherical, num_radial))
    current = np.arange(1, count + 1) * np.pi  # roots of j_0
    roots[0] = current[:num_radial]
    for l in range(1, num_spherical):
        low, high = current[:-1].copy(), current[1:].copy()
        sign_low = np.sign(_spherical_jn(l, low))
        for _ in range(200):
            mid = 0.5 * (low + high)
            same = np.sign(_spherical_jn(l, mid)) == sign_low
            low, high = np.where(same, mid, low), np.where(same, high, mid)
        current = 0.5 * (low + high)
        roots[l] = current[:num_radial]
    return roots


class Envelope(nn.Module):
    r"""DimeNet's envelope :math:`u(x)`, including the :math:`1/x` (module docstring).

    Shapes: ``x`` [...] (distance / cutoff, > 0) → [...].
    """

    def __init__(self, exponent: int = 5):
        super().__init__()
        if exponent < 1:
            raise ValueError(f"envelope exponent must be a positive integer, got {exponent}")
        p = exponent + 1
        self.p = p
        self.a = -(p + 1) * (p + 2) / 2.0
        self.b = float(p * (p + 2))
        self.c = -p * (p + 1) / 2.0

    def forward(self, x: Tensor) -> Tensor:
        x_p0 = x.pow(self.p - 1)
        x_p1 = x_p0 * x
        x_p2 = x_p1 * x
        return (1.0 / x + self.a * x_p0 + self.b * x_p1 + self.c * x_p2) * (x < 1.0).to(x.dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(exponent={self.p - 1})"


class RadialBesselBasis(nn.Module):
    r""":math:`\mathrm{RBF}_n(d) = u(d/c)\, \sin(f_n\, d/c)` with trainable :math:`f_n` (PyG: ``rbf.freq``).

    Shapes: ``envelope`` [E] (:math:`u(x)`), ``x`` [E] → [E, num_radial].
    """

    def __init__(self, num_radial: int = 6):
        super().__init__()
        if num_radial < 1:
            raise ValueError(f"num_radial must be >= 1, got {num_radial}")
        self.freq = nn.Parameter(torch.arange(1, num_radial + 1, dtype=torch.float64) * math.pi)

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.freq.copy_(torch.arange(1, self.freq.numel() + 1, dtype=self.freq.dtype) * math.pi)

    def forward(self, envelope: Tensor, x: Tensor) -> Tensor:
        return envelope.unsqueeze(-1) * torch.sin(self.freq * x.unsqueeze(-1))  # [E, R]


class SphericalBesselRadial(nn.Module):
    r"""The radial part of the spherical basis, per edge: :math:`\tilde u_{ln}(d) = u(x) N_{ln} j_l(z_{ln} x)`.

    ``roots`` :math:`z_{ln}` are rounded to float32 (as in PyG; see the module
    docstring) and kept in float64; ``normalizer`` :math:`N_{ln}` is computed in
    float64 from the rounded roots.

    Shapes: ``envelope`` [E], ``x`` [E] → [E, num_spherical, num_radial].
    """

    def __init__(self, num_spherical: int = 7, num_radial: int = 6):
        super().__init__()
        if num_spherical < 1 or num_radial < 1:
            raise ValueError(f"num_spherical and num_radial must be >= 1, got {num_spherical}, {num_radial}")
        roots = spherical_bessel_roots(num_spherical, num_radial).astype(np.float32).astype(np.float64)  # [L, R]
        normalizer = np.stack([np.sqrt(2.0) / np.abs(_spherical_jn(l + 1, roots[l])) for l in range(num_spherical)])
        self.num_spherical, self.num_radial = num_spherical, num_radial
        self.register_buffer("roots", torch.from_numpy(roots))
        self.register_buffer("normalizer", torch.from_numpy(normalizer))

    def forward(self, envelope: Tensor, x: Tensor) -> Tensor:
        r = self.roots * x.view(-1, 1, 1)  # [E, L, R]; row l holds the arguments of j_l
        inv_r = 1.0 / r
        sin_r = torch.sin(r)
        orders = [sin_r * inv_r]  # j_0 at every argument, [E, L, R]
        if self.num_spherical > 1:
            orders.append((orders[0] - torch.cos(r)) * inv_r)  # j_1
        for l in range(1, self.num_spherical - 1):
            orders.append((2 * l + 1) * inv_r * orders[-1] - orders[-2])  # j_{l+1}
        bessel = torch.stack([orders[l][:, l] for l in range(self.num_spherical)], dim=1)  # [E, L, R]: j_l(z_ln x)
        return envelope.view(-1, 1, 1) * self.normalizer * bessel  # [E, L, R]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_spherical={self.num_spherical}, num_radial={self.num_radial})"


class ZonalHarmonics(nn.Module):
    r""":math:`Y_l(\alpha) = \sqrt{(2l+1)/4\pi}\, P_l(\cos\alpha)`, l = 0..L-1 (spherical harmonics with m = 0).

    Shapes: ``cos_angle`` [T] → [T, L].
    """

    def __init__(self, num_spherical: int = 7):
        super().__init__()
        self.num_spherical = num_spherical
        self.prefactors = [math.sqrt((2 * l + 1) / (4 * math.pi)) for l in range(num_spherical)]

    def forward(self, cos_angle: Tensor) -> Tensor:
        legendre = [torch.ones_like(cos_angle), cos_angle]
        for l in range(2, self.num_spherical):
            legendre.append(((2 * l - 1) * cos_angle * legendre[-1] - (l - 1) * legendre[-2]) / l)
        return torch.stack([c * p for c, p in zip(self.prefactors, legendre[: self.num_spherical])], dim=-1)  # [T, L]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_spherical={self.num_spherical})"
