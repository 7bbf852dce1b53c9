"""Features by type. Each is fitted on the training split only, transforms a column into a float
array, and saves and loads itself as JSON (no pickle)."""

from forgeml.data.features.audio import AudioFeature
from forgeml.data.features.binary import BinaryFeature
from forgeml.data.features.category import CategoryFeature
from forgeml.data.features.corpus import CorpusText, NextToken
from forgeml.data.features.image import ImageFeature
from forgeml.data.features.multilabel import MultiLabelTarget
from forgeml.data.features.numeric import NumericFeature
from forgeml.data.features.sequence import SequenceFeature
from forgeml.data.features.target import ClassLabels, RegressionTarget
from forgeml.data.features.text import TextFeature

KINDS = {f.kind: f for f in (NumericFeature, CategoryFeature, BinaryFeature, ImageFeature, TextFeature, SequenceFeature, CorpusText,
                                 AudioFeature)}
TARGETS = {t.kind: t for t in (ClassLabels, RegressionTarget, MultiLabelTarget, NextToken)}

__all__ = ["AudioFeature", "BinaryFeature", "CategoryFeature", "ImageFeature", "NumericFeature", "ClassLabels", "RegressionTarget", "MultiLabelTarget",
           "TextFeature", "SequenceFeature", "CorpusText", "NextToken", "KINDS", "TARGETS"]
