"""Three-way merge for ``apply``: re-exported from the apply engine (``controller.apply.merge``),
where skyctl and the GitSource reconciler share it."""

from controller.apply.merge import three_way_patch

__all__ = ["three_way_patch"]
