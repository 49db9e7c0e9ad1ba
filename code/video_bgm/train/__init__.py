"""Training the video encoder: config, datasets, feature cache, loop. Inference never imports this."""
