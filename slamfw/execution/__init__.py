"""Running work: the executor (parallel map with progress) and the atomic chunk store."""
