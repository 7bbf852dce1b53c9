"""Data: sources (files in), features (fit/transform/save), split, batching and augmentation."""
