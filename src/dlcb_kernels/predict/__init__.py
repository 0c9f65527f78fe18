"""The predictor: a model's time on a device from that device's measured kernel throughput.

kernel_model.ThroughputModel turns a throughput table into per-kernel times (exact record,
fitted efficiency, or roofline), model_time.predict_model lowers a model's layers onto it.
"""

from .kernel_model import KernelPrediction, ThroughputModel, summarize_cross_validation
from .model_time import LayerPrediction, ModelPrediction, format_prediction, predict_model, prediction_to_dict

__all__ = ["KernelPrediction", "LayerPrediction", "ModelPrediction", "ThroughputModel", "format_prediction",
           "predict_model", "prediction_to_dict", "summarize_cross_validation"]
