"""Training: the Trainer loop and the pieces it is built from (losses, optimizers, schedules,
precision, checkpoints, callbacks)."""
