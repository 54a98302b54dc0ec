"""The unrolled table look-ups give exactly what jnp.interp / jnp.searchsorted give."""

import jax
import jax.numpy as jnp
import numpy as np

from popz.interpolation import bin_index, interp


def test_interp_is_bitwise_jnp_interp_inside_on_and_beyond_the_grid():
    xp = jnp.linspace(0.001, 4.0, 10001, dtype=jnp.float32)
    fp = jnp.sin(3.0 * xp) + xp**2
    x = jnp.concatenate([jax.random.uniform(jax.random.key(0), (5000,), minval=-0.5, maxval=4.5), xp[::97], jnp.array([xp[0], xp[-1]])])
    ours = jax.jit(jax.vmap(lambda v: interp(v, xp, fp)))(x)
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(jnp.interp(x, xp, fp)))


def test_bin_index_matches_searchsorted_and_clips_to_the_bins():
    edges = jnp.linspace(0.001, 4.0, 17, dtype=jnp.float32)
    x = jnp.concatenate([jax.random.uniform(jax.random.key(1), (2000,), minval=-1.0, maxval=5.0), edges])
    expected = np.clip(np.searchsorted(np.asarray(edges), np.asarray(x), side="right") - 1, 0, 15)
    np.testing.assert_array_equal(np.asarray(jax.vmap(lambda v: bin_index(edges, v))(x)), expected)


def test_the_search_counts_like_searchsorted_for_every_table_size_with_ties_and_non_finite_queries():
    from popz.interpolation import _count_at_or_below

    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 7, 8, 9, 16, 17, 100, 1001):
        table = np.sort(rng.uniform(0.0, 4.0, n)).astype(np.float32)
        if n > 5:
            table[3] = table[4]  # a tie
        x = np.concatenate([rng.uniform(-1.0, 5.0, 500), table, [np.nan, np.inf, -np.inf]]).astype(np.float32)
        ours = jax.jit(jax.vmap(lambda v: _count_at_or_below(jnp.asarray(table), v)))(x)
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(jnp.searchsorted(table, x, side="right")), err_msg=f"n={n}")

