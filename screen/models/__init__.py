"""Keras model definitions, the weights registry and training. TensorFlow is imported lazily."""
