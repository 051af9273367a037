"""Elastic supernet: layers that slice max-size weights, and the `Supernet` over a space."""

from nas.supernet.elastic import ElasticLayer
from nas.supernet.elastic_io import (
    ElasticDownsample,
    ElasticHead,
    ElasticImageStem,
    ElasticSequenceStem,
)
from nas.supernet.elastic_mixers import ElasticAttention, ElasticConv, ElasticGLUMLP, ElasticSSM
from nas.supernet.regularize import Regularizer, step_generator
from nas.supernet.supernet import Supernet, space_fingerprint

__all__ = [
    "ElasticAttention", "ElasticConv", "ElasticDownsample", "ElasticGLUMLP", "ElasticHead",
    "ElasticImageStem", "ElasticLayer", "ElasticSSM", "ElasticSequenceStem", "Regularizer",
    "Supernet", "space_fingerprint", "step_generator",
]
