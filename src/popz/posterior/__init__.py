"""Per-object posterior products: summaries, p(z), storage."""

from popz.posterior.summaries import DEFAULT_Z_GRID, redshift_pdf, summarize

__all__ = ["summarize", "redshift_pdf", "DEFAULT_Z_GRID"]
