"""The class names of the real datasets' masks, by mask value: one place that the readers
(:mod:`monai_gamble.data.pathology`) and the generators (:mod:`monai_gamble.data.synthetic`) both import."""

from __future__ import annotations

__all__ = ["MONUSAC_CLASSES", "PATHOLOGY_CLASSES", "SARDER_GLOMERULI_CLASSES"]

#: class names of the podocyte dataset, by mask value
PATHOLOGY_CLASSES = ("background", "glomeruli", "podocyte", "non-podocyte")
#: class names of the binary glomerulus masks of the Sarder lab's frozen-section tiles (255 -> 1)
SARDER_GLOMERULI_CLASSES = ("background", "glomerulus")
#: class names of MoNuSAC 2020's nucleus masks, by mask value
MONUSAC_CLASSES = ("background", "epithelial", "lymphocyte", "neutrophil", "macrophage")
