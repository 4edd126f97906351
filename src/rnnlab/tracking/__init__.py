"""Run trackers beside TensorBoard (MLflow)."""
