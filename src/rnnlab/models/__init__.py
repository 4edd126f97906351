"""Plain `nn.Module` networks; the tasks in `rnnlab.tasks` wrap them for training."""
