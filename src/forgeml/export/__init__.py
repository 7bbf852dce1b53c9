"""Bundle in, file out: ONNX export (onnx.py). Optional libraries are imported inside the functions."""
