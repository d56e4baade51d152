"""Clinical notes: cleaning profiles, sentence segmentation, and the `notes clean` pipeline."""
