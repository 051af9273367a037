"""Static token-mixer layers in deployment form, their counts, and their timing.

Depends on torch only, so it runs on a bare target box.
"""

from kernels.attention import AttentionLayer, attention_forward
from kernels.build import MIXER_KERNELS, StaticModel, build_layer, layer_flops, layer_params
from kernels.conv import ConvLayer, conv_forward
from kernels.glu_mlp import GLUMLPLayer, glu_mlp_forward
from kernels.specs import (
    MIXERS,
    STEM_KINDS,
    DownsampleSpec,
    HeadSpec,
    LayerSpec,
    MixerSpec,
    StemSpec,
    conv_out_side,
    parse_stem,
    signature,
    spec_from_dict,
    spec_to_dict,
)
from kernels.ssm.layer import SSMLayer, ssm_forward
from kernels.stem import (
    ConvStem,
    Downsample,
    Head,
    ImageStem,
    SequenceStem,
    conv_stem_forward,
    downsample_forward,
    head_forward,
    image_stem_forward,
    sequence_stem_forward,
)

__all__ = [
    "MIXERS", "MIXER_KERNELS", "STEM_KINDS", "AttentionLayer", "ConvLayer", "ConvStem",
    "Downsample", "DownsampleSpec", "conv_out_side", "conv_stem_forward", "parse_stem",
    "GLUMLPLayer", "Head", "HeadSpec", "ImageStem", "LayerSpec", "MixerSpec", "SSMLayer",
    "SequenceStem", "StaticModel", "StemSpec", "attention_forward", "build_layer",
    "conv_forward", "downsample_forward", "glu_mlp_forward", "head_forward",
    "image_stem_forward", "layer_flops", "layer_params", "sequence_stem_forward", "signature",
    "spec_from_dict", "spec_to_dict", "ssm_forward",
]

# Timing harness, device fingerprint and latency lookup tables (issue 5).
from kernels.fingerprint import KERNELS_VERSION, DeviceFingerprint, device_fingerprint  # noqa: E402
from kernels.latency_table import (  # noqa: E402
    Calibration,
    FingerprintMismatchError,
    LatencyEntry,
    LatencyTable,
    LatencyTableError,
    MissingLayerError,
    fit_calibration,
    latency_metrics,
)
from kernels.timing import (  # noqa: E402
    Measurement,
    TimingConfig,
    measure_interleaved,
    measure_latency,
    measure_layer,
    measure_layers,
    measure_model,
    measure_models,
)

__all__ += [
    "KERNELS_VERSION", "Calibration", "DeviceFingerprint", "FingerprintMismatchError",
    "LatencyEntry", "LatencyTable", "LatencyTableError", "Measurement", "MissingLayerError",
    "TimingConfig",
    "device_fingerprint", "fit_calibration", "latency_metrics",
    "measure_interleaved", "measure_latency", "measure_layer", "measure_layers",
    "measure_model", "measure_models",
]
