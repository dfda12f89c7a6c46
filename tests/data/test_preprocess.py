import numpy as np

from controlbreast.data.preprocess import fit_to_square


def test_fit_to_square_pads_or_crops_keeping_aspect():
    wide = np.full((50, 100), 200, np.uint8)
    padded = fit_to_square(wide, 64, "pad")
    assert padded.shape == (64, 64) and padded[0].max() == 0 and padded[32].min() == 200
    cropped = fit_to_square(wide, 64, "crop")
    assert cropped.shape == (64, 64) and cropped.min() == 200

