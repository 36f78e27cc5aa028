"""Networks of the world model: the context path and the denoiser's inner U-Net."""
