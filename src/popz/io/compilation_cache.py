"""XLA's persistent compilation cache for popz's processes (the CLI, Dask workers).

Called explicitly at a process's entry, never on import.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["enable_compilation_cache"]


def enable_compilation_cache() -> None:
    """Keep compiled programs between runs (startup ~25 s -> ~9 s on 2 cores), unless the user set a cache up or off.

    ``POPZ_JAX_CACHE``: the folder (default ~/.cache/popz/jax), or ``off``. The
    same program is loaded, not recompiled, so results are bitwise unchanged; an
    entry cut short by a kill is ignored by JAX (with a warning) and recompiled.
    Small programs are kept too: a fit compiles some 160 of them (its eager
    array operations), and loading them takes a 32-galaxy MCMC fit from 28 s to
    22 s once the cache is warm (2 CPU cores, 2026-11-28).
    """
    if os.environ.get("JAX_COMPILATION_CACHE_DIR") or os.environ.get("POPZ_JAX_CACHE", "") == "off":
        return
    folder = os.environ.get("POPZ_JAX_CACHE") or str(Path.home() / ".cache" / "popz" / "jax")
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # a read-only home: compile every time
    import jax

    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
