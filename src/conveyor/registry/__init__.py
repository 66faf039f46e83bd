"""The model registry: model packages, flavors, signatures, versions, aliases, lineage."""
