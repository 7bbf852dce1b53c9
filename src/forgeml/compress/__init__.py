"""Compression: a bundle in, a smaller or faster bundle out (int8 quantization, pruning, distillation)."""
