"""Network architectures. The segmenters of the bundles are MONAI's (``monai.networks.nets``)."""

__all__: list[str] = []
