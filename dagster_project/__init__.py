"""The bundled sample's code location: the entropy-assets component on the records in ``data/sample``.

It is not part of the installed package (the wheel holds ``entropy_assets`` only): it runs from a checkout of the
repository, which ``workspace.yaml``, ``[tool.dg]`` in ``pyproject.toml`` and ``scripts/main.sh`` point at, with
the repository's root as the working directory.
"""
