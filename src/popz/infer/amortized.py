"""Amortized neural posteriors: a conditional normalizing flow q(theta | fluxes, errors, E(B-V)) (the fast path).

One network gives every galaxy its posterior in a single pass:

- **Features** (per galaxy, from an :class:`~popz.infer.likelihood.Observation`):
  per band ``asinh(f / 2 s_b)`` and ``ln(sigma / s_b)`` with ``s_b`` the
  band's 10-year 1-sigma flux, a mask bit (0 where the band is observed), and
  E(B-V); masked bands carry zeros. Standardised with the training set's
  moments, then embedded by an MLP once per galaxy.
- **Flow** (flowjax rational-quadratic-spline coupling flow) over
  standardised logits of the parameters, ``u = logit((theta - lower) /
  (upper - lower))``, so every draw lies inside the prior bounds; densities
  are returned in theta with the Jacobian of that map.
- **Input density** (out-of-distribution flag): a small unconditional flow
  over the features of observed bands (masked ones filled with their training
  mean plus a fixed jitter); a galaxy whose feature log density falls below
  the 1% quantile of held-out in-distribution training examples is flagged.

Training (:mod:`popz.infer.amortized_train`) streams simulated galaxies from
the population prior, the photometric emulator and the data model with
randomised depths, so the flow is conditioned on the errors it is given.

Shapes: D parameters, B bands, C = 3 B + 1 features, S draws per galaxy.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import paramax
from flowjax.bijections import RationalQuadraticSpline
from flowjax.distributions import Normal
from flowjax.flows import coupling_flow

from popz.infer.likelihood import Observation

__all__ = [
    "Architecture",
    "PosteriorFlow",
    "new_posterior_flow",
    "features",
    "n_features",
]

_EPS = 1e-6


class Architecture(NamedTuple):
    """The flow's shape (recorded in the manifest to rebuild it).

    flow_layers : int     coupling layers
    nn_width : int        conditioner width
    nn_depth : int        conditioner hidden layers
    knots : int           spline knots per dimension
    interval : float      spline range, in standardised units (identity outside)
    embed_width : int     embedding MLP width
    embed_depth : int     embedding MLP hidden layers
    embed_dim : int       embedding size (the flow's condition)
    ood_layers : int      coupling layers of the input-density flow
    ood_width : int
    """

    flow_layers: int = 8
    nn_width: int = 64
    nn_depth: int = 2
    knots: int = 8
    interval: float = 5.0
    embed_width: int = 128
    embed_depth: int = 2
    embed_dim: int = 32
    ood_layers: int = 4
    ood_width: int = 64


def n_features(n_bands: int) -> int:
    return 3 * n_bands + 1


def features(obs: Observation, flux_scale_nJy):
    """Raw features (C,) of one galaxy: asinh fluxes, log errors, mask bits, E(B-V) (see the module docstring)."""
    seen = obs.observed
    s = flux_scale_nJy
    flux = jnp.where(seen, obs.flux_nJy, 0.0)
    err = jnp.where(seen, obs.flux_err_nJy, s)
    asinh_flux = jnp.where(seen, jnp.arcsinh(flux / (2.0 * s)), 0.0)
    log_err = jnp.where(seen, jnp.log(jnp.maximum(err, _EPS) / s), 0.0)
    return jnp.concatenate([asinh_flux, log_err, (~seen).astype(jnp.float32), jnp.atleast_1d(obs.ebv).astype(jnp.float32)])


class PosteriorFlow(eqx.Module):
    """q(theta | observation) with its standardisations, the training cut and the input-density flow.

    lower, upper : (D,) parameter bounds
    u_loc, u_scale : (D,) moments of the training logits
    feature_loc, feature_scale : (C,) moments of the training features
    flux_scale_nJy : (B,) s_b, nJy
    cut_flux_nJy : scalar, the training cut's flux in ``cut_band`` (observed flux above it and above cut_snr sigma)
    cut_snr : scalar
    ebv_max : scalar, the largest training E(B-V), mag
    ood_threshold : scalar, log input density below which a galaxy is out of distribution
    """

    embed: eqx.nn.MLP
    flow: eqx.Module
    ood_flow: eqx.Module
    lower: jax.Array
    upper: jax.Array
    u_loc: jax.Array
    u_scale: jax.Array
    feature_loc: jax.Array
    feature_scale: jax.Array
    flux_scale_nJy: jax.Array
    cut_flux_nJy: jax.Array
    cut_snr: jax.Array
    ebv_max: jax.Array
    ood_threshold: jax.Array
    cut_band: int = eqx.field(static=True)
    parameter_names: tuple = eqx.field(static=True)
    band_names: tuple = eqx.field(static=True)

    # --- coordinates -------------------------------------------------------------------
    def to_u(self, theta):
        """Standardised logits (..., D) of theta (..., D), and ln |d u / d theta| summed over D."""
        return to_standardised_logits(theta, self.lower, self.upper, self.u_loc, self.u_scale)

    def to_theta(self, u):
        """theta (..., D) from standardised logits, and ln |d theta / d u| summed over D."""
        return from_standardised_logits(u, self.lower, self.upper, self.u_loc, self.u_scale)

    # --- one galaxy ----------------------------------------------------------------------
    def standard_features(self, obs: Observation):
        """Standardised features (C,) of one galaxy."""
        return (features(obs, self.flux_scale_nJy) - self.feature_loc) / self.feature_scale

    def condition(self, obs: Observation):
        """The flow's condition (embed_dim,) for one galaxy."""
        return self.embed(self.standard_features(obs))

    def sample_and_log_prob(self, key, obs: Observation, n: int, scale: float = 1.0):
        """n draws theta (n, D) and their ln density (n,) in theta's units.

        ``scale`` 1: draws from q(theta | obs). ``scale`` > 1: from q broadened by
        drawing the flow's base variable with that standard deviation (heavier
        tails, a safer importance-sampling proposal); the density returned is
        that of the broadened proposal.
        """
        flow = paramax.unwrap(self.flow)
        cond = self.condition(obs)
        # the base distribution is itself a trained affine map of a standard normal
        eps = scale * jax.random.normal(key, (n, self.lower.shape[0]))
        z, log_det_base = jax.vmap(flow.base_dist.bijection.transform_and_log_det)(eps)
        u, log_det = coupling_forward(flow.bijection, z, cond)
        log_eps = jnp.sum(jax.scipy.stats.norm.logpdf(eps, scale=scale), axis=-1)
        theta, log_jac = self.to_theta(u)
        return theta, log_eps - log_det_base - log_det - log_jac

    def log_prob(self, theta, obs: Observation):
        """ln q(theta | obs) for theta (..., D) of one galaxy."""
        flow = paramax.unwrap(self.flow)
        u, log_jac = self.to_u(theta)
        return flow.log_prob(u, condition=self.condition(obs)) + log_jac

    def input_log_density(self, obs: Observation):
        """Log density of the galaxy's observed-band features under the training distribution (scalar)."""
        return paramax.unwrap(self.ood_flow).log_prob(ood_features(self.standard_features(obs), obs.observed))

    def in_training_cut(self, obs: Observation):
        """True where the galaxy is inside the training selection: observed flux in the cut band above the cut
        and cut_snr sigma, and E(B-V) within the training range."""
        b = self.cut_band
        f, e = obs.flux_nJy[b], obs.flux_err_nJy[b]
        return obs.observed[b] & (f > self.cut_flux_nJy) & (f > self.cut_snr * e) & (obs.ebv <= self.ebv_max)


def to_standardised_logits(theta, lower, upper, u_loc, u_scale):
    """u = (logit((theta - lower) / (upper - lower)) - u_loc) / u_scale, shape (..., D), and ln |d u / d theta|
    summed over D. theta (..., D); the rest (D,). theta is clipped 1e-6 inside the bounds."""
    span = upper - lower
    p = jnp.clip((theta - lower) / span, _EPS, 1.0 - _EPS)
    u = (jnp.log(p) - jnp.log1p(-p) - u_loc) / u_scale
    log_jac = jnp.sum(-jnp.log(p) - jnp.log1p(-p) - jnp.log(span) - jnp.log(u_scale), axis=-1)
    return u, log_jac


def from_standardised_logits(u, lower, upper, u_loc, u_scale):
    """The inverse of :func:`to_standardised_logits`: theta (..., D), and ln |d theta / d u| summed over D."""
    x = u * u_scale + u_loc
    theta = lower + (upper - lower) * jax.nn.sigmoid(x)
    log_jac = jnp.sum(jnp.log(upper - lower) + jax.nn.log_sigmoid(x) + jax.nn.log_sigmoid(-x) + jnp.log(u_scale), axis=-1)
    return theta, log_jac


def coupling_forward(bijection, z, cond):
    """The sampling direction of a flowjax coupling flow, for a batch of draws sharing one condition.

    z : (S, D) base draws; cond : (E,) the condition. Returns u (S, D) and
    ln |det du/dz| (S,), equal to ``vmap(bijection.transform_and_log_det)`` to
    float32 rounding.

    flowjax builds every spline as a pytree and finds its bin by a search; on a
    CPU that made the draws cost three times what the conditioner networks do.
    Here each layer's spline is computed on the whole batch at once: the knots
    by one softmax and cumulative sum, the bin by counting the knots below, the
    neighbouring knots by an indexed take, and the derivatives only at those two
    knots. The draws sit on the last axis throughout (x is (D, S), the spline's
    parameters (M, 3 K + 4, S)), so every reduction over a spline's knots runs
    over a short leading axis with the draws contiguous and vectorised: 1.5x
    faster on a CPU than draws-first. The condition's share of each
    conditioner's first layer is computed once, not once per draw. Any other
    flowjax bijection falls back to flowjax.
    """
    with jax.ensure_compile_time_eval():  # the checks and constants below depend on no traced value
        layers = _rqs_coupling_layers(bijection)
    if layers is None:
        return flowjax_forward(bijection, z, cond)
    coupling, permutation, init, interval, min_width, min_derivative = layers
    split = coupling.untransformed_dim
    (w1, b1), *rest = ((layer.weight, layer.bias) for layer in coupling.conditioner.layers)
    x, log_det = z.T, jnp.zeros(z.shape[0], z.dtype)
    n_transformed = x.shape[0] - split
    for i in range(w1.shape[0]):  # unrolled: fuses better than lax.scan over the layers
        h = w1[i, :, :split] @ x[:split] + (w1[i, :, split:] @ cond + b1[i])[:, None]
        for w, b in rest:
            h = w[i] @ jax.nn.gelu(h) + b[i][:, None]
        # flowjax reads the conditioner's output (M * P,) as (M, P): row m holds transformed dimension m's P parameters
        params = h.reshape(n_transformed, -1, x.shape[1]) + init[None, :, None]
        y, spline_log_det = _spline_forward(x[split:], params, interval, min_width, min_derivative)
        x = jnp.concatenate([x[:split], y], axis=0)[permutation[i]]
        log_det = log_det + spline_log_det
    return x.T, log_det


def flowjax_forward(bijection, z, cond):
    """flowjax's own transform of z (S, D) under one condition (E,): u (S, D) and ln |det du/dz| (S,). The reference
    that :func:`coupling_forward` equals, and its fallback."""
    return jax.vmap(lambda v: bijection.transform_and_log_det(v, cond))(z)


def _rqs_coupling_layers(bijection):
    """(coupling, permutations (L, D), initial spline parameters, interval, min width, min derivative) of a
    ``coupling_flow`` with rational-quadratic splines and gelu conditioners, or None for any other flowjax bijection."""
    from flowjax.bijections import Chain, Coupling, Permute, Scan
    from jax.flatten_util import ravel_pytree

    if not (isinstance(bijection, Scan) and isinstance(bijection.bijection, Chain) and len(bijection.bijection.bijections) == 2):
        return None
    coupling, permute = bijection.bijection.bijections
    if not (isinstance(coupling, Coupling) and isinstance(permute, Permute)):
        return None
    mlp = coupling.conditioner
    probe = jnp.array([-1.5, 0.3, 2.0])
    if not (mlp.activation is jax.nn.gelu and mlp.use_bias and mlp.use_final_bias and bool(jnp.all(mlp.final_activation(probe) == probe))):
        return None
    spline = coupling.transformer_constructor(jnp.zeros(mlp.out_size // (coupling.dim - coupling.untransformed_dim)))
    if not isinstance(spline, RationalQuadraticSpline):
        return None
    init = ravel_pytree(eqx.filter(spline, eqx.is_inexact_array))[0]
    k1 = spline.knots + 1
    min_derivative = float(paramax.unwrap(spline).derivatives[0]) - float(jax.nn.softplus(init[2 * k1]))
    (permutation,) = permute.permutation
    return coupling, permutation, init, tuple(map(float, spline.interval)), float(spline.x_pos.min_width), min_derivative


def _spline_forward(x, params, interval, min_width, min_derivative):
    """flowjax's RationalQuadraticSpline forward for x (M, S) with raw parameters (M, 3 K + 4, S), draws last; identity
    outside the interval. Returns y (M, S) and the ln derivative summed over M (S,)."""
    lo, hi = interval
    k1 = (params.shape[1] - 1) // 3  # K + 1 bins

    def knots(logits):  # inner knot positions (M, K, S): flowjax's RealToIncreasingOnInterval
        widths = jax.nn.softmax(logits, axis=1)
        return jnp.cumsum(min_width + ((hi - lo) - min_width * k1) * widths, axis=1)[:, :-1] + lo

    inner_x, inner_y = knots(params[:, :k1]), knots(params[:, k1 : 2 * k1])
    inside = (x >= lo) & (x <= hi)
    xc = jnp.clip(x, lo, hi)
    bin_index = jnp.sum(inner_x < xc[:, None], axis=1)[:, None]  # (M, 1, S)
    edge_lo, edge_hi = jnp.full((x.shape[0], 1, x.shape[1]), lo, x.dtype), jnp.full((x.shape[0], 1, x.shape[1]), hi, x.dtype)
    x_pos = jnp.concatenate([edge_lo, inner_x, edge_hi], axis=1)
    y_pos = jnp.concatenate([edge_lo, inner_y, edge_hi], axis=1)
    raw_d = params[:, 2 * k1 :]

    def pick(a):
        return jnp.take_along_axis(a, bin_index, axis=1)[:, 0]

    xk, xk1, yk, yk1 = pick(x_pos[:, :-1]), pick(x_pos[:, 1:]), pick(y_pos[:, :-1]), pick(y_pos[:, 1:])
    dk = jax.nn.softplus(pick(raw_d[:, :-1])) + min_derivative
    dk1 = jax.nn.softplus(pick(raw_d[:, 1:])) + min_derivative
    xi = (xc - xk) / (xk1 - xk)
    sk = (yk1 - yk) / (xk1 - xk)
    t = xi * (1.0 - xi)
    den = sk + (dk1 + dk - 2.0 * sk) * t
    y = jnp.where(inside, jnp.clip(yk + (yk1 - yk) * (sk * xi**2 + dk * t) / den, lo, hi), x)
    deriv = sk**2 * (dk1 * xi**2 + 2.0 * sk * t + dk * (1.0 - xi) ** 2) / den**2
    return y, jnp.sum(jnp.where(inside, jnp.log(deriv), 0.0), axis=0)


def ood_features(standard_features, observed):
    """Input-density features (2 B,): the flux and error features, masked bands' at 0 (their standardised mean).

    The mask bits (discrete) and E(B-V) (checked against its training range
    instead) are left out.
    """
    b = observed.shape[0]
    seen = jnp.concatenate([observed, observed])
    return jnp.where(seen, standard_features[: 2 * b], 0.0)


def new_posterior_flow(
    key,
    *,
    parameter_names,
    band_names,
    lower,
    upper,
    u_loc,
    u_scale,
    feature_loc,
    feature_scale,
    flux_scale_nJy,
    cut_band: int,
    cut_flux_nJy: float,
    cut_snr: float,
    ebv_max: float,
    architecture: Architecture = Architecture(),
) -> PosteriorFlow:
    """A freshly initialised :class:`PosteriorFlow`; ``ood_threshold`` is -inf (nothing flagged) until calibrated."""
    a = architecture
    d, b = len(parameter_names), len(band_names)
    c = n_features(b)
    k_embed, k_flow, k_ood = jax.random.split(key, 3)
    embed = eqx.nn.MLP(c, a.embed_dim, a.embed_width, a.embed_depth, activation=jax.nn.gelu, key=k_embed)
    flow = coupling_flow(
        k_flow,
        base_dist=Normal(jnp.zeros(d)),
        transformer=RationalQuadraticSpline(knots=a.knots, interval=a.interval),
        cond_dim=a.embed_dim,
        flow_layers=a.flow_layers,
        nn_width=a.nn_width,
        nn_depth=a.nn_depth,
        nn_activation=jax.nn.gelu,
        invert=False,
    )
    ood = coupling_flow(
        k_ood,
        base_dist=Normal(jnp.zeros(2 * b)),
        transformer=RationalQuadraticSpline(knots=a.knots, interval=a.interval),
        flow_layers=a.ood_layers,
        nn_width=a.ood_width,
        nn_depth=1,
        nn_activation=jax.nn.gelu,
    )
    f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    return PosteriorFlow(
        embed=embed,
        flow=flow,
        ood_flow=ood,
        lower=f32(lower),
        upper=f32(upper),
        u_loc=f32(u_loc),
        u_scale=f32(u_scale),
        feature_loc=f32(feature_loc),
        feature_scale=f32(feature_scale),
        flux_scale_nJy=f32(flux_scale_nJy),
        cut_flux_nJy=f32(cut_flux_nJy),
        cut_snr=f32(cut_snr),
        ebv_max=f32(ebv_max),
        ood_threshold=f32(-np.inf),
        cut_band=int(cut_band),
        parameter_names=tuple(parameter_names),
        band_names=tuple(band_names),
    )
