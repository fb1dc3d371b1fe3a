"""Model backends: one small Protocol per kind, one module per backend, no Ray."""
