"""Compression: a trained bundle in, a smaller or faster bundle out (quantized, pruned, distilled)."""
