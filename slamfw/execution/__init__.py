"""Running work: local worker processes (the default executor), atomic writes and the chunk store.

The executor contract and the serial executor are in :mod:`slamfw.components.executor`.
"""
