"""SD-VAE latents: loading the VAE, encoding folders to latent files, decoding back."""
