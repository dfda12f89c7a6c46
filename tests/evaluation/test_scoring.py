"""One model's metrics (evaluation/scoring.py) on small hand-made probabilities."""

import numpy as np

from controlbreast.evaluation.config import EvaluateConfig
from controlbreast.evaluation.predictions import SplitImages
from controlbreast.evaluation.scoring import image_level, image_level_auc


def test_image_level_auc_max_pools_each_films_patches():
    sources = ("a", "a", "a", "b", "b", "c", "c", "d")
    labels = np.array([1, 0, 0, 0, 0, 1, 0, 0])  # films a and c hold a lesion patch
    positive = np.array([0.9, 0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.2])
    probabilities = np.column_stack([1 - positive, positive])
    test = SplitImages(ids=tuple(str(i) for i in range(8)), files=(), labels=labels,
                       classes=("normal", "malignant"), sources=sources)
    scores, hits = image_level(probabilities, test, 1)
    np.testing.assert_allclose(scores, [0.9, 0.6, 0.7, 0.2])
    assert hits.tolist() == [True, False, True, False]
    result = image_level_auc(probabilities, test, 1, EvaluateConfig(bootstrap=200))
    assert result["image_auc_malignant"]["estimate"] == 1.0 and result["test_source_images"] == 4
    whole = SplitImages(ids=("x", "y"), files=(), labels=np.array([0, 1]), classes=test.classes,
                        sources=("x", "y"))
    assert image_level(probabilities[:2], whole, 1) is None
