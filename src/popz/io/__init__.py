"""Reading and writing: catalogs, training sets, atomic file writes."""

from popz.io.atomic import atomic_path

__all__ = ["atomic_path"]
