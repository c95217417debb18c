"""The plugins that ship with slamfw.

Each module is registered in the ``slamfw`` entry-point group by slamfw's ``pyproject.toml``,
exactly as a third-party package would register its own; they use only slamfw's public API.
"""
