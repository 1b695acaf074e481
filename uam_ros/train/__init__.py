"""Data collection, datasets, training and evaluation (DESIGN.md sections 2 and 4).

Layer rule: imports uam_ros.model, uam_ros.sim and uam_ros.control.robot_config -- never rclpy.

    dataset_format.py  the on-disk dataset (meta.json + episode_*.npz + vl_pairs.jsonl/vl_images.npz)
    collect.py         `uam collect`: scripted-expert episodes and vision-language pairs from the sim
    datasets.py        torch Datasets for the three stages; tokenizer and normalisation stats
    config.py          TrainConfig (config/train/{ventral,dorsal,action}.yaml)
    trainer.py         `uam train`: the training loop (AdamW, cosine, AMP, DDP, exact resume)
    evaluate.py        `uam eval`: closed-loop success in the sim, VQA accuracy
    curves.py          loss curves as CSV/JSON/PNG
    progress.py        a progress bar on stderr
    provenance.py      code revision and creation records

Heavy imports (torch, mujoco) happen inside these modules, not here, so `uam --help` stays fast.
"""
