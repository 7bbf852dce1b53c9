"""Smaller and faster variants of a trained bundle: quantization, pruning, distillation."""
