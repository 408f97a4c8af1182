"""Results on disk: layout, atomic writes, cache and provenance."""
