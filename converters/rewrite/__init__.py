"""Graph rewrites that run before the vendor converters: passes that turn what a real model brings (vendor custom
operators with a known meaning, sparse constant weights, dynamic dims a converter cannot keep) into what the
converters accept, each one checked against the un-rewritten model's numbers in its own test.

``tflite.py`` runs the TFLite flatbuffer passes, ``onnx.py`` the ONNX graph passes; one module per pass.
"""
