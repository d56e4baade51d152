"""Fine-tuning and inference: `ehrkit finetune` and `ehrkit predict`."""
