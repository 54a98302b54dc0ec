"""HTML reports with plots: a ``popz fit`` output against a truth column, and an emulator's accuracy.

:func:`write_fit_report` reads the three products of ``popz fit --out OUT.parquet``
(:func:`popz.posterior.catalog_fit.output_paths`) and writes, into a folder,
PNG plots, ``metrics.json`` and an ``index.html`` that shows them:

- always: ``nz.png`` (histogram of ``z_median`` and the stacked p(z), the mean of
  every object's p(z) from ``OUT.pz.hdf5``, on at most :data:`MAX_STACKED`
  objects: a fixed random subset beyond that) and ``flags.png`` (objects with
  each flag bit set, by name, and with none);
- with a true or spectroscopic redshift: ``zphot_ztrue.png`` (``z_median``
  against the truth, with the 1:1 line and the outlier limits
  ``|dz| = 0.15``), ``pit.png`` (PIT histogram) and ``coverage.png``
  (empirical against nominal coverage of central credible intervals), and the
  metrics of :func:`redshift_metrics` in ``metrics.json``.

The PIT of an object is the randomized rank of its true redshift among its S
stored posterior draws (``OUT.samples.hdf5``): ``(n_below + U (n_equal + 1)) / (S + 1)``
with U uniform on (0, 1) from a fixed seed. It is exactly uniform when the truth
is one more draw from the posterior, however few the draws (4 with compact
storage), and tends to the fraction of draws below the truth as S grows. It does
not depend on how the p(z) were stored.

:func:`write_emulator_report` plots what an emulator's manifest holds (the
accuracy table on its validation split) and, for photometric emulators, the
residual RMS per redshift bin stored with the weights (its error model).

docs/report.md describes the contents and the metrics.
"""

from __future__ import annotations

import html
import json
import warnings
from pathlib import Path

import numpy as np

from popz.errors import PopzError
from popz.io.atomic import atomic_path

__all__ = [
    "MAX_STACKED",
    "OUTLIER_LIMIT",
    "TRUTH_COLUMNS",
    "coverage_curve",
    "pit_ks",
    "pit_values",
    "redshift_metrics",
    "write_emulator_report",
    "write_fit_report",
]

OUTLIER_LIMIT = 0.15  # |dz| = |zp - zt| / (1 + zt) above this is an outlier
MAX_STACKED = 100_000  # objects whose p(z) enter the stacked n(z) at most
TRUTH_COLUMNS = ("true_redshift", "redshift_true", "z_true", "ztrue", "z_spec", "zspec", "specz", "redshift")
NOMINAL_LEVELS = np.round(np.linspace(0.05, 0.95, 19), 2)  # central credible intervals of the coverage plot
_HEXBIN_ABOVE = 5000  # objects: a scatter plot up to this many, a hexbin above
_BLOCK = 50_000  # rows of the samples file read at a time


# ----------------------------------------------------------------------------- metrics


def pit_values(z_samples, z_true, *, rng: np.random.Generator | None = None) -> np.ndarray:
    """PIT (n,) of each true redshift ``z_true`` (n,) among posterior draws ``z_samples`` (n, S).

    With r draws below the truth and e equal to it, out of S finite draws:
    ``(r + (e + 1) / 2) / (S + 1)``, the truth's mid-rank; with ``rng``, the
    randomized rank ``(r + U (e + 1)) / (S + 1)``, U uniform on (0, 1), which is
    exactly uniform on (0, 1) when the truth is distributed as one more draw,
    however few the draws (4 for compact storage). Both tend to the fraction of
    draws below the truth as S grows. NaN where the truth or every draw is not finite.
    """
    z = np.asarray(z_samples, np.float64)
    t = np.asarray(z_true, np.float64)
    if z.ndim != 2 or t.shape != (z.shape[0],):
        raise PopzError(f"redshift draws {z.shape} and true redshifts {t.shape} disagree (want (N, S) and (N,))")
    finite = np.isfinite(z)
    s = finite.sum(axis=1)
    below = (finite & (z < t[:, None])).sum(axis=1)
    equal = (finite & (z == t[:, None])).sum(axis=1)
    u = 0.5 if rng is None else rng.uniform(size=t.shape)
    pit = (below + u * (equal + 1)) / (s + 1)
    return np.where(np.isfinite(t) & (s > 0), pit, np.nan)


def pit_ks(pit) -> float:
    """Kolmogorov-Smirnov statistic of the PIT values against the uniform distribution (NaN: none finite)."""
    p = np.sort(np.asarray(pit, np.float64)[np.isfinite(pit)])
    n = p.size
    if n == 0:
        return float("nan")
    i = np.arange(1, n + 1)
    return float(max(np.max(i / n - p), np.max(p - (i - 1) / n)))


def coverage_curve(pit, levels=NOMINAL_LEVELS) -> np.ndarray:
    """Empirical coverage of central credible intervals of nominal ``levels``: fraction with |PIT - 1/2| <= level / 2.

    The truth lies in the central interval of probability c of the draws exactly
    when its PIT is within c/2 of 1/2.
    """
    p = np.asarray(pit, np.float64)
    p = p[np.isfinite(p)]
    levels = np.asarray(levels, np.float64)
    if p.size == 0:
        return np.full(levels.shape, np.nan)
    return np.array([np.mean(np.abs(p - 0.5) <= c / 2 + 1e-12) for c in levels])


def redshift_metrics(z_phot, z_true, *, pit=None, z_lo=None, z_hi=None) -> dict:
    """Point-estimate and calibration metrics over objects with a finite ``z_phot`` and ``z_true``.

    dz = (z_phot - z_true) / (1 + z_true);
    ``sigma_nmad`` = 1.4826 median(|dz - median(dz)|); ``outlier_fraction`` = fraction with |dz| > 0.15;
    ``bias`` = median(dz); ``pit_ks`` = K-S statistic of ``pit`` against uniform;
    ``coverage_68`` = fraction with ``z_lo <= z_true <= z_hi`` (the 16th and 84th percentiles);
    ``n`` = objects used. Metrics whose inputs are not given are absent.
    """
    zp = np.asarray(z_phot, np.float64)
    zt = np.asarray(z_true, np.float64)
    use = np.isfinite(zp) & np.isfinite(zt)
    out: dict = {"n": int(use.sum())}
    if not use.any():
        return out
    dz = (zp[use] - zt[use]) / (1.0 + zt[use])
    median = float(np.median(dz))
    out["sigma_nmad"] = float(1.4826 * np.median(np.abs(dz - median)))
    out["outlier_fraction"] = float(np.mean(np.abs(dz) > OUTLIER_LIMIT))
    out["bias"] = median
    if pit is not None:
        out["pit_ks"] = pit_ks(np.asarray(pit, np.float64)[use])
    if z_lo is not None and z_hi is not None:
        lo = np.asarray(z_lo, np.float64)[use]
        hi = np.asarray(z_hi, np.float64)[use]
        out["coverage_68"] = float(np.mean((lo <= zt[use]) & (zt[use] <= hi)))
    return out


# ----------------------------------------------------------------------------- reading a fit


def _read_fit(fit_path: Path):
    """(Parquet schema, popz metadata, pz path, samples path); PopzError when not a complete popz fit output."""
    import pyarrow.parquet as pq

    from popz.posterior.catalog_fit import output_paths

    _, pz, samples = output_paths(fit_path)
    required = ("objectId", "z_median", "z_q16", "z_q84", "flags")
    schema = metadata = None
    if fit_path.is_file() and pz.is_file() and samples.is_file():
        try:  # pyarrow's errors for a non-Parquet or truncated file vary
            schema = pq.read_schema(fit_path)
            metadata = json.loads((schema.metadata or {})[b"popz"])
        except Exception:
            schema = None
    if schema is None or not isinstance(metadata, dict) or any(c not in schema.names for c in required):
        raise PopzError(f"{fit_path} is not a popz fit output: need {fit_path.name}, {pz.name} and {samples.name}")
    return schema, metadata, pz, samples


def _as_frame(table):
    import pandas as pd

    if isinstance(table, pd.DataFrame):
        return table
    if hasattr(table, "to_pandas"):  # astropy or pyarrow tables
        return table.to_pandas()
    return pd.DataFrame(table)


def _columns_text(names) -> str:
    return ", ".join(map(str, list(names)[:12]))


def _resolve_truth(fit_path: Path, schema, object_id: np.ndarray, truth, truth_column, catalog):
    """(true redshift (n,) aligned with the fit's rows, NaN where unknown; the column's name) or (None, None)."""
    import pandas as pd
    import pyarrow.parquet as pq

    n = object_id.size
    if truth is not None and catalog is not None:
        raise PopzError("give the truth as an array or as a catalog column, not both")
    if truth is not None:
        values = np.asarray(truth, np.float64).reshape(-1)
        if values.size != n:
            raise PopzError(f"the truth has {values.size} values but {fit_path.name} has {n} objects: give one per row, in its order")
        return values, truth_column or "truth"
    if catalog is None:
        names = schema.names
        if truth_column is not None and truth_column not in names:
            raise PopzError(f"{fit_path.name} has no column {truth_column!r}; it has {_columns_text(names)}...")
        found = [truth_column] if truth_column is not None else [c for c in TRUTH_COLUMNS if c in names]
        if not found:
            return None, None
        values = pq.read_table(fit_path, columns=[found[0]]).column(0).to_numpy(zero_copy_only=False)
        return np.asarray(values, np.float64), found[0]

    label = "the catalog"
    if isinstance(catalog, (str, Path)):
        from popz.io.catalog import read_table

        label = Path(catalog).name
        catalog = read_table(catalog)
    frame = _as_frame(catalog)
    wanted = repr(truth_column) if truth_column is not None else " or ".join(TRUTH_COLUMNS)
    found = [truth_column] if truth_column is not None else [c for c in TRUTH_COLUMNS if c in frame.columns]
    if not found or found[0] not in frame.columns:
        raise PopzError(f"{label} has no column {wanted}; it has {_columns_text(frame.columns)}...")
    truth_column = found[0]
    id_column = next((c for c in ("objectId", "id") if c in frame.columns), None)
    try:
        if id_column is None:
            raise ValueError
        ids = np.asarray(frame[id_column], np.int64)
    except (TypeError, ValueError, OverflowError):
        raise PopzError(f"{label} needs an objectId (or id) column of integer object ids to join on the fit's objectId") from None
    values = pd.to_numeric(frame[truth_column], errors="coerce").to_numpy(np.float64)
    series = pd.Series(values, index=ids)
    if series.index.has_duplicates:
        raise PopzError(f"{label}: object id {series.index[series.index.duplicated()][0]} appears more than once")
    return series.reindex(object_id).to_numpy(np.float64), truth_column


def _redshift_draws(fit_path: Path, samples_path: Path, object_id: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Stored redshift draws (len(rows), S) of the fit's ``rows`` (sorted), read in blocks."""
    import h5py

    with h5py.File(samples_path, "r") as f:
        names = json.loads(f.attrs.get("parameters", "[]"))
        if "samples" not in f or "objectId" not in f or "redshift" not in names:
            raise PopzError(f"{fit_path} is not a popz fit output: need {fit_path.name}, {samples_path.name} with redshift draws")
        if not np.array_equal(np.asarray(f["objectId"][:], np.int64), object_id):
            raise PopzError(f"{samples_path.name} and {fit_path.name} list different objects: rerun popz fit")
        j = names.index("redshift")
        data = f["samples"]
        out = np.empty((rows.size, data.shape[1]), np.float64)
        for start in range(0, data.shape[0], _BLOCK):
            local = rows[(rows >= start) & (rows < start + _BLOCK)]
            if local.size == 0:
                continue
            block = data[start : min(start + _BLOCK, data.shape[0]), :, j]
            out[np.searchsorted(rows, local)] = block[local - start]
    return out


def _stacked_pz(fit_path: Path, pz_path: Path, n: int, z_hint: float, cap: int = MAX_STACKED):
    """(z grid, mean p(z) over at most ``cap`` objects (a fixed random subset), objects used).

    ``interp`` ensembles (``storage="full"``): the mean of ``pdf`` on their own grid.
    ``quant`` ensembles (``storage="compact"``): the mean CDF (linear between the
    stored quantiles) differenced on a grid up to ``max(3, z_hint)``; unlike qp's
    pdf, finite when two quantiles coincide (tied draws stored in float32).
    Other parameterizations: the mean of qp's ``pdf`` on that grid.
    """
    import qp

    if n <= cap:
        pick = np.arange(n)
    else:
        pick = np.sort(np.random.default_rng(0).choice(n, cap, replace=False))
    with warnings.catch_warnings():  # qp warns about p(z) with no mass on its grid; they stack as zeros
        warnings.simplefilter("ignore")
        try:
            meta = qp.read_metadata(str(pz_path))
            xvals = np.asarray(meta["xvals"], np.float64).reshape(-1) if "xvals" in meta else None
            quants = np.asarray(meta["quants"], np.float64).reshape(-1) if "quants" in meta else None
            if xvals is not None and xvals.size > 1:
                grid = xvals
            else:
                edges = np.linspace(0.0, max(3.0, float(np.ceil(z_hint * 10) / 10)), 302)
                grid = 0.5 * (edges[1:] + edges[:-1])
            total = np.zeros(grid.size)
            for start, end, ensemble in qp.iterator(str(pz_path), chunk_size=_BLOCK):
                local = pick[(pick >= start) & (pick < end)] - start
                if local.size == 0:
                    continue
                if xvals is None and quants is not None:
                    locs = np.asarray(ensemble.objdata["locs"], np.float64)[local]
                    cdf = np.array([np.interp(edges, row, quants, left=0.0, right=1.0) for row in locs])
                    values = np.diff(cdf, axis=1) / np.diff(edges)
                else:
                    values = np.asarray(ensemble[local].pdf(grid), np.float64).reshape(local.size, grid.size)
                total += np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0).sum(axis=0)
        except Exception:  # qp and h5py raise many kinds for a file that is not a qp ensemble
            samples_name = fit_path.with_name(fit_path.stem + ".samples.hdf5").name
            raise PopzError(f"{fit_path} is not a popz fit output: need {fit_path.name}, {pz_path.name} and {samples_name}") from None
    return grid, total / max(pick.size, 1), int(pick.size)


# ----------------------------------------------------------------------------- plots


def _figure(size=(6.0, 4.5)):
    from matplotlib.figure import Figure  # no pyplot: no global state, any backend

    fig = Figure(figsize=size)
    return fig, fig.subplots()


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path.name


def _plot_zphot_ztrue(zp, zt, metrics: dict, truth_label: str, path: Path) -> str:
    use = np.isfinite(zp) & np.isfinite(zt)
    zp, zt = zp[use], zt[use]
    top = 1.05 * float(max(np.max(zp), np.max(zt), 0.1))
    fig, ax = _figure((6.0, 5.6))
    if zp.size > _HEXBIN_ABOVE:
        art = ax.hexbin(zt, zp, gridsize=80, extent=(0, top, 0, top), bins="log", mincnt=1, cmap="viridis")
        fig.colorbar(art, ax=ax, label="objects", shrink=0.8)
    else:
        ax.scatter(zt, zp, s=6 if zp.size > 500 else 12, alpha=0.6, lw=0, color="C0")
    line = np.array([0.0, top])
    ax.plot(line, line, "k-", lw=0.8, label="1:1")
    ax.plot(line, line + OUTLIER_LIMIT * (1 + line), "C3--", lw=0.8, label=f"|dz| = {OUTLIER_LIMIT}")
    ax.plot(line, line - OUTLIER_LIMIT * (1 + line), "C3--", lw=0.8)
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_aspect("equal")
    ax.set_xlabel(f"true redshift ({truth_label})")
    ax.set_ylabel("photo-z (posterior median)")
    text = (
        f"N = {metrics['n']}\n$\\sigma_{{NMAD}}$ = {metrics['sigma_nmad']:.4f}\noutliers = {100 * metrics['outlier_fraction']:.2f}%\n"
        f"bias = {metrics['bias']:+.4f}\nPIT K-S = {metrics.get('pit_ks', float('nan')):.3f}\n68% coverage = {metrics['coverage_68']:.3f}"
    )
    ax.text(0.03, 0.97, text, transform=ax.transAxes, va="top", ha="left", fontsize=8,
            bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.85, "lw": 0.5})  # fmt: skip
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def _plot_pit(pit, n_bins: int, ks: float, path: Path) -> str:
    p = pit[np.isfinite(pit)]
    fig, ax = _figure()
    ax.hist(p, bins=n_bins, range=(0, 1), density=True, color="C0", alpha=0.7, edgecolor="white")
    expected = p.size / n_bins
    band = np.sqrt(expected) / expected if expected > 0 else 0.0  # Poisson 1-sigma of a bin, in density units
    ax.axhspan(1 - band, 1 + band, color="0.5", alpha=0.2, lw=0, label="uniform ± 1σ (Poisson)")
    ax.axhline(1.0, color="k", lw=1, label="uniform")
    ax.set_xlim(0, 1)
    ax.set_xlabel("PIT")
    ax.set_ylabel("density")
    ax.set_title(f"PIT of {p.size} objects, K-S = {ks:.3f}", fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _plot_coverage(levels, empirical, coverage_68: float, path: Path) -> str:
    fig, ax = _figure((5.2, 5.0))
    ax.plot([0, 1], [0, 1], "k-", lw=0.8, label="ideal")
    ax.plot(levels, empirical, "o-", color="C0", ms=4, label="central intervals of the draws")
    ax.plot([0.68], [coverage_68], "s", color="C3", ms=6, label="z_q16 - z_q84 (summary table)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("nominal coverage")
    ax.set_ylabel("empirical coverage")
    ax.set_title("above the line: under-confident; below: over-confident", fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    return _save(fig, path)


def _plot_nz(z_median, grid, stacked, n_stacked: int, z_true, path: Path) -> str:
    """Histograms as objects per unit redshift over all objects (those beyond the plot lower the bars, not rescale them)."""
    fig, ax = _figure((7.0, 4.5))
    zm = z_median[np.isfinite(z_median)]
    zt = None if z_true is None else z_true[np.isfinite(z_true)]
    top = max([float(grid[-1])] + [float(np.max(v)) for v in (zm, zt) if v is not None and v.size])
    n_edges = int(np.clip(2 * np.sqrt(max(zm.size, 1)), 15, 80)) + 1
    edges = np.linspace(0.0, top, n_edges)
    width = edges[1] - edges[0]
    if zm.size:
        ax.hist(zm, bins=edges, weights=np.full(zm.size, 1 / (zm.size * width)), histtype="stepfilled", color="C0",
                alpha=0.35, label=f"z_median ({zm.size})")  # fmt: skip
    if zt is not None and zt.size:
        ax.hist(zt, bins=edges, weights=np.full(zt.size, 1 / (zt.size * width)), histtype="step", color="k", lw=1.2,
                label=f"truth ({zt.size})")  # fmt: skip
    ax.plot(grid, stacked, color="C3", lw=1.5, label=f"stacked p(z) ({n_stacked}; on the p(z) grid)")
    ax.set_xlim(0, top)
    ax.set_xlabel("redshift")
    ax.set_ylabel("n(z) (unit integral)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def _flag_counts(flags: np.ndarray) -> dict:
    from popz.posterior.flags import FLAGS

    flags = np.asarray(flags, np.int64)
    counts = {"no_flags": int(np.sum(flags == 0))}
    known = 0
    for flag in FLAGS:
        counts[flag.name] = int(np.sum((flags & flag.bit) != 0))
        known |= flag.bit
    other = int(np.sum((flags & ~known) != 0))
    if other:
        counts["other_bits"] = other
    return counts


def _plot_flags(counts: dict, n: int, path: Path) -> str:
    names = list(counts)
    values = np.array([counts[k] for k in names])
    fig, ax = _figure((7.0, 0.9 + 0.32 * len(names)))
    y = np.arange(len(names))[::-1]
    ax.barh(y, values, color=["C2" if k == "no_flags" else "C1" for k in names])
    for yi, v in zip(y, values):
        ax.text(v, yi, f" {v} ({100 * v / max(n, 1):.1f}%)", va="center", fontsize=8)
    ax.set_yticks(y, names, fontsize=8)
    ax.set_xlim(0, max(1, values.max()) * 1.25)
    ax.set_xlabel(f"objects (of {n}; an object can have several bits)")
    return _save(fig, path)


# ----------------------------------------------------------------------------- HTML


_STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:1em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
    "th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}"
    "code{background:#f3f3f3;padding:2px 4px;word-break:break-all}img{max-width:100%;margin:0.5em 0}"
    "figure{display:inline-block;margin:0.5em;vertical-align:top}figcaption{font-size:0.9em;color:#555}"
)


def _table(rows, header=None) -> str:
    cells = "".join(f"<th>{html.escape(str(h))}</th>" for h in header) if header else ""
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{'<tr>' + cells + '</tr>' if cells else ''}{body}</table>"


def _page(title: str, sections: list[str]) -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>\n<h1>{html.escape(title)}</h1>\n" + "\n".join(sections) + "\n</body></html>\n"
    )


def _images(items) -> str:
    return "".join(
        f'<figure><a href="{html.escape(name)}"><img src="{html.escape(name)}" alt="{html.escape(caption)}"></a>'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        for name, caption in items
    )


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


# ----------------------------------------------------------------------------- reports


def write_fit_report(
    fit_path,
    out_dir,
    *,
    truth=None,
    truth_column: str | None = None,
    catalog=None,
    n_bins: int = 20,
    title: str | None = None,
) -> Path:
    """Write plots, ``metrics.json`` and ``index.html`` for a ``popz fit`` output; return ``out_dir/index.html``.

    ``fit_path``: the ``OUT.parquet`` of ``popz fit`` (``OUT.pz.hdf5`` and ``OUT.samples.hdf5`` beside it).
    The true (or spectroscopic) redshift comes from, in this order:
    ``truth``, an array with one value per row of the fit table in its order (NaN: unknown);
    ``catalog`` (a table, a DataFrame or a file path read by :func:`popz.io.catalog.read_table`),
    column ``truth_column`` (default: the first of :data:`TRUTH_COLUMNS` it has), joined on its
    ``objectId`` (or ``id``) column; or the fit table's own ``truth_column`` (or a column of
    :data:`TRUTH_COLUMNS`). Without any, the report has only n(z) and flags.
    ``n_bins``: bins of the PIT histogram. ``title``: the page's title (default: from the file name).
    Raises PopzError for input that is not a popz fit output, a missing truth column, or no object with a truth.
    """
    import pyarrow.parquet as pq

    fit_path = Path(fit_path)
    out_dir = Path(out_dir)
    if int(n_bins) < 1:
        raise PopzError(f"the PIT histogram needs at least one bin, got {n_bins}")
    n_bins = int(n_bins)
    schema, metadata, pz_path, samples_path = _read_fit(fit_path)
    summary = pq.read_table(fit_path, columns=[c for c in ("objectId", "z_median", "z_q16", "z_q84", "z_q95", "flags") if c in schema.names])

    def column(name):
        return np.asarray(summary.column(name).to_numpy(zero_copy_only=False))

    object_id = column("objectId").astype(np.int64)
    z_median = column("z_median").astype(np.float64)
    flags = column("flags").astype(np.int64)
    n = object_id.size
    z_true, truth_label = _resolve_truth(fit_path, schema, object_id, truth, truth_column, catalog)

    images: list[tuple[str, str]] = []
    report: dict = {"fit": str(fit_path), "command": metadata.get("command", ""), "n_objects": int(n)}
    metrics = None
    if z_true is not None:
        has = np.isfinite(z_true) & np.isfinite(z_median)
        if not has.any():
            raise PopzError(f"no objects in common: none of the {n} objects of {fit_path.name} has a finite true redshift")
        rows = np.flatnonzero(has)
        draws = _redshift_draws(fit_path, samples_path, object_id, rows)
        pit = np.full(n, np.nan)
        pit[rows] = pit_values(draws, z_true[rows], rng=np.random.default_rng(0))  # randomized rank, reproducible
        metrics = redshift_metrics(z_median[has], z_true[has], pit=pit[has], z_lo=column("z_q16")[has], z_hi=column("z_q84")[has])
        empirical = coverage_curve(pit[has])
        report.update({
            "truth_column": truth_label, "n_objects_with_truth": metrics["n"], "n_draws_per_object": int(draws.shape[1]),
            **{k: v for k, v in metrics.items() if k != "n"},
            "outlier_limit": OUTLIER_LIMIT,
            "coverage": {"nominal": NOMINAL_LEVELS.tolist(), "empirical": empirical.tolist()},
            "pit_histogram": np.histogram(pit[has], bins=n_bins, range=(0, 1))[0].tolist(),
        })  # fmt: skip
        images.append((_plot_zphot_ztrue(z_median, z_true, metrics, truth_label, out_dir / "zphot_ztrue.png"),
                       "photo-z (posterior median) against the truth"))  # fmt: skip
        images.append((_plot_pit(pit[has], n_bins, metrics["pit_ks"], out_dir / "pit.png"), "PIT histogram"))
        images.append((_plot_coverage(NOMINAL_LEVELS, empirical, metrics["coverage_68"], out_dir / "coverage.png"),
                       "coverage of central credible intervals"))  # fmt: skip
    upper = column("z_q95") if "z_q95" in schema.names else z_median
    z_hint = float(np.nanmax(upper)) if np.isfinite(upper).any() else 3.0
    grid, stacked, n_stacked = _stacked_pz(fit_path, pz_path, n, z_hint)
    report["n_stacked"] = n_stacked
    images.append((_plot_nz(z_median, grid, stacked, n_stacked, None if z_true is None else z_true[np.isfinite(z_true)], out_dir / "nz.png"),
                   "n(z): posterior medians and stacked p(z)"))  # fmt: skip
    counts = _flag_counts(flags)
    report["flags"] = counts
    images.append((_plot_flags(counts, n, out_dir / "flags.png"), "flag bits set"))
    _write_text(out_dir / "metrics.json", json.dumps(report, indent=1) + "\n")

    title = title or f"popz fit report: {fit_path.name}"
    sections = [f"<p>Fit: <code>{html.escape(str(fit_path))}</code></p>"]
    if metadata.get("command"):
        sections.append(f"<p>Command: <code>{html.escape(str(metadata['command']))}</code></p>")
    facts = [("objects", n), ("objects with no flag", counts["no_flags"]), ("objects in the stacked p(z)", n_stacked)]
    if metrics is not None:
        facts.insert(1, (f"objects with a truth ({truth_label})", metrics["n"]))
    for key, label in (("storage", "p(z) storage"), ("n_keep", "stored draws per object"), ("emulator", "emulator")):
        if key in metadata:
            facts.append((label, metadata[key]))
    sections.append("<h2>Counts</h2>" + _table(facts))
    if metrics is not None:
        rows_html = [
            ("sigma_NMAD", f"{metrics['sigma_nmad']:.4f}", "1.4826 median|dz - median dz|, dz = (z_median - z_true)/(1 + z_true)"),
            ("outlier fraction", f"{metrics['outlier_fraction']:.4f}", f"fraction with |dz| > {OUTLIER_LIMIT}"),
            ("bias", f"{metrics['bias']:+.4f}", "median dz"),
            ("PIT K-S", f"{metrics['pit_ks']:.4f}", "Kolmogorov-Smirnov distance of the PIT from uniform"),
            ("68% coverage", f"{metrics['coverage_68']:.4f}", "fraction with z_q16 <= z_true <= z_q84 (nominal 0.68)"),
        ]
        sections.append("<h2>Metrics</h2>" + _table(rows_html, ("metric", "value", "definition")))
    else:
        sections.append("<p>No truth column: give a catalog with true or spectroscopic redshifts for the metrics.</p>")
    sections.append("<h2>Plots</h2>" + _images(images))
    sections.append('<p><a href="metrics.json">metrics.json</a></p>')
    index = out_dir / "index.html"
    _write_text(index, _page(title, sections))
    return index


def write_emulator_report(emulator_name_or_folder, out_dir, *, kind: str | None = None) -> Path:
    """Plots of an emulator's stored accuracy and an ``index.html``; return ``out_dir/index.html``.

    ``emulator_name_or_folder``: a shipped model name (``lsst-default``) or an emulator folder;
    ``kind``: ``photometry`` (default for names) or ``spectrum``. Plots the manifest's
    accuracy table on the validation split (RMS, 68th and 99th percentiles of
    |emulated - simulated| per band, mag) and, for photometric emulators, the
    residual RMS per redshift bin and band kept with the weights. Runs no simulation.
    """
    from popz.emulate.files import emulator_folder, read_manifest

    out_dir = Path(out_dir)
    folder = emulator_folder(emulator_name_or_folder, kind)
    manifest = read_manifest(folder)
    kind = manifest.get("kind", kind or "photometry")
    table = manifest.get("accuracy_validation")
    if not isinstance(table, dict) or not table:
        raise PopzError(f"{folder}: its manifest has no accuracy table (accuracy_validation)")
    bands = list(table)
    images = []

    fig, ax = _figure((7.0, 4.5))
    x = np.arange(len(bands))
    for k, (key, label) in enumerate((("p68", "68th percentile"), ("rms", "RMS"), ("p99", "99th percentile"))):
        values = [float(table[b].get(key, np.nan)) for b in bands]
        ax.bar(x + (k - 1) * 0.27, values, 0.27, label=label, color=f"C{k}")
    ax.set_xticks(x, bands)
    top = max(float(table[b].get(key, 0.0)) for b in bands for key in ("p68", "rms", "p99"))
    ax.set_ylim(0, 1.25 * top if np.isfinite(top) and top > 0 else None)
    ax.set_xlabel("band")
    ax.set_ylabel("|emulated - simulated| [mag]")
    n_val = {int(table[b].get("n", 0)) for b in bands}
    ax.set_title(f"{kind} emulator, validation split ({', '.join(str(v) for v in sorted(n_val))} draws)", fontsize=10)
    ax.legend(fontsize=8, ncol=3, loc="upper center")
    images.append((_save(fig, out_dir / "accuracy.png"), "accuracy per band on the validation split"))

    error_model = None
    if kind == "photometry":
        error_model = _error_model(folder)
    if error_model is not None:
        edges, rms = error_model
        fig, ax = _figure((7.0, 4.5))
        mid = 0.5 * (edges[1:] + edges[:-1])
        labels = bands if len(bands) == rms.shape[1] else [str(j) for j in range(rms.shape[1])]
        for j, label in enumerate(labels):
            ax.step(np.append(edges[:-1], edges[-1]), np.append(rms[:, j], rms[-1, j]), where="post", label=label, lw=1.2)
        ax.set_xlim(edges[0], edges[-1])
        ax.set_ylim(0, None)
        ax.set_xlabel("redshift")
        ax.set_ylabel("residual RMS [mag]")
        ax.set_title(f"validation residual RMS per redshift bin ({mid.size} bins; the fit's emulator error)", fontsize=10)
        ax.legend(fontsize=8, ncol=min(6, len(labels)))
        images.append((_save(fig, out_dir / "residual_rms_redshift.png"), "residual RMS against redshift per band"))

    training = manifest.get("training", {})
    summary = {"emulator": str(emulator_name_or_folder), "folder": str(folder), "kind": kind, "model": manifest.get("model"),
               "accuracy_validation": table, "training": {k: training.get(k) for k in ("n_train", "n_validation", "best_epoch", "epochs_run", "stopped")}}  # fmt: skip
    if error_model is not None:
        summary["residual_rms_by_redshift"] = {"edges": error_model[0].tolist(), "rms": error_model[1].tolist()}
    _write_text(out_dir / "accuracy.json", json.dumps(summary, indent=1) + "\n")

    sections = [f"<p>Emulator folder: <code>{html.escape(str(folder))}</code></p>"]
    if training.get("command"):
        sections.append(f"<p>Trained with: <code>{html.escape(str(training['command']))}</code></p>")
    facts = [("kind", kind), ("model", manifest.get("model", "")), ("popz version", manifest.get("popz_version", ""))]
    facts += [(k.replace("_", " "), training[k]) for k in ("n_train", "n_validation", "best_epoch", "epochs_run", "stopped") if k in training]
    sections.append("<h2>Emulator</h2>" + _table(facts))
    rows = [(b, f"{table[b].get('rms', np.nan):.4f}", f"{table[b].get('p68', np.nan):.4f}", f"{table[b].get('p99', np.nan):.4f}", table[b].get("n", ""))
            for b in bands]  # fmt: skip
    sections.append("<h2>Accuracy on the validation split</h2>" + _table(rows, ("band", "RMS [mag]", "p68 [mag]", "p99 [mag]", "n")))
    sections.append(
        "<p>Residual = emulated - simulated magnitude on the training run's validation split; p68 and p99 are "
        "percentiles of its absolute value. Held-out draws (<code>popz validate-emulator</code>) give the per-object residual plot.</p>"
    )
    sections.append("<h2>Plots</h2>" + _images(images))
    sections.append('<p><a href="accuracy.json">accuracy.json</a></p>')
    index = out_dir / "index.html"
    _write_text(index, _page(f"popz emulator report: {manifest.get('model', folder.name)} ({kind})", sections))
    return index


def _error_model(folder: Path):
    """(redshift edges, RMS (n_zbins, n_bands)) stored with a photometric emulator's weights, or None."""
    from popz.emulate.files import load

    try:
        emulator = load(folder, kind="photometry")
        edges = np.asarray(emulator.error_redshift_edges, np.float64)
        rms = np.asarray(emulator.error_rms_mag, np.float64)
    except (PopzError, AttributeError):
        return None
    if rms.ndim != 2 or edges.size != rms.shape[0] + 1 or not np.any(rms > 0):
        return None  # an untrained error model is all zeros
    return edges, rms
