"""Moved to :mod:`edgecv.preprocess` (every layer preprocesses pictures, the runtime included);
kept so that code written against the old path still imports."""

from edgecv.preprocess import *  # noqa: F401,F403
from edgecv.preprocess import ImageTransform, UnreadableImage, load_image, preprocess, preprocess_with_transform  # noqa: F401
