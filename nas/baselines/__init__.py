"""Hand-designed baselines: the networks a searched front must beat at equal latency.

`image`: LeNet-5, a tiny ResNet, a tiny ViT and a tiny MobileNetV2 (torch only). Trained
with `nas.training.standalone.fit_model`, the supernet's own recipe family.
`text`: GPT-style character transformers (nanoGPT's shakespeare-char 6 x 384 and smaller
ones), trained by `fit_lm` on the supernet's random-offset windows (torch only).
"""

from nas.baselines.image import (
    IMAGE_BASELINES,
    LeNet5,
    MobileNetV2Tiny,
    ResNetTiny,
    ViTTiny,
    build_image_baseline,
)
from nas.baselines.text import GPT, GPT_BASELINES, GPTConfig, LMFit, build_text_baseline, fit_lm

__all__ = ["GPT", "GPT_BASELINES", "IMAGE_BASELINES", "GPTConfig", "LMFit", "LeNet5",
           "MobileNetV2Tiny", "ResNetTiny", "ViTTiny", "build_image_baseline",
           "build_text_baseline", "fit_lm"]
