"""The tiny model configuration the model and runtime tests share (fast on one CPU core)."""

JOINTS = ["j1", "j2", "j3", "gripper"]
TINY = dict(
    image_size=32, patch_size=8, max_text_len=10, d_model=32, n_heads=2, mlp_ratio=2,
    vision_layers=1, ventral_layers=1, dorsal_layers=1, action_layers=1, chunk_size=6, num_steps=3,
    future_latent_grid=2, latent_dim=8, future_frame_size=8, decoder_channels=8,
)

# The training tests' model (16 px images, chunk 4): trainer, DDP and GPU tests share it.
TRAIN_TINY = dict(
    d_model=32, n_heads=2, vision_layers=1, ventral_layers=1, dorsal_layers=1, action_layers=1, image_size=16,
    patch_size=8, future_latent_grid=2, future_frame_size=8, latent_dim=8, decoder_channels=8, chunk_size=4,
    max_text_len=12, num_steps=2, future_offset=2,
)
