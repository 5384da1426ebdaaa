"""A callback that records what the trainer did, for assertions."""

import keras


class Recorder(keras.callbacks.Callback):
    """Records epochs run, per-step running losses, optimizer iterations and dtypes."""

    def __init__(self):
        super().__init__()
        self.epochs = []
        self.batch_losses = []  # per epoch: Keras' running mean of the loss after each step
        self.iterations_at_begin = None
        self.iterations_at_end = None
        self.optimizer_class = None
        self.compute_dtype = None
        self.layer_compute_dtypes = None  # {layer path: compute dtype} of every sublayer

    def on_train_begin(self, logs=None):
        # BackupAndRestore (earlier in the list) has restored the state by now.
        self.iterations_at_begin = int(self.model.optimizer.iterations.numpy())
        self.optimizer_class = type(self.model.optimizer).__name__
        self.compute_dtype = self.model.compute_dtype
        self.layer_compute_dtypes = {layer.path: layer.compute_dtype
                                     for layer in self.model._flatten_layers()}

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)
        self.batch_losses.append([])

    def on_train_batch_end(self, batch, logs=None):
        self.batch_losses[-1].append(float(logs["loss"]))

    def on_train_end(self, logs=None):
        self.iterations_at_end = int(self.model.optimizer.iterations.numpy())


class Interrupt(Exception):
    """Raised by `InterruptAfterEpoch` to stop a run as a crash would."""


class InterruptAfterEpoch(keras.callbacks.Callback):
    """Raises `Interrupt` at the end of epoch `epoch` (0-based), after the backup was saved."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise Interrupt(f"interrupted after epoch {epoch}")
