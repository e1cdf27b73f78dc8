"""Deployment: ONNX export with metadata, and a sim-to-sim loop that runs from the ONNX file alone."""
