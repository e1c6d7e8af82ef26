"""Models: frozen encoders (``models.encoders``) and trainable heads (``models.heads``)."""
