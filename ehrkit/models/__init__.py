"""Models: BERT encoders and Llama-shaped causal models (transformers), and a GRU; presets."""
