"""Hand-designed baselines: the networks a searched front must beat at equal latency.

`image`: LeNet-5, a tiny ResNet, a tiny ViT and a tiny MobileNetV2 (torch only). Trained
with `nas.training.standalone.fit_model`, the supernet's own recipe family.
"""

from nas.baselines.image import (
    IMAGE_BASELINES,
    LeNet5,
    MobileNetV2Tiny,
    ResNetTiny,
    ViTTiny,
    build_image_baseline,
)

__all__ = ["IMAGE_BASELINES", "LeNet5", "MobileNetV2Tiny", "ResNetTiny", "ViTTiny",
           "build_image_baseline"]
