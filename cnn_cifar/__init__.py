"""cnn-cifar: declare CNNs in YAML, cross-validate, search and evaluate them on CIFAR-10."""

import os

# TensorFlow's C++ start-up lines (oneDNN notices, missing CUDA) are noise for a CPU user.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"
