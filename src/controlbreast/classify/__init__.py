"""timm classifiers on real and synthetic images: models, transforms, training, prediction, registry."""
