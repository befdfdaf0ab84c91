"""Kafka: the project's topics (`topics`) and the single-node local broker launcher (`local`)."""
