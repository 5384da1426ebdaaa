"""The paper's learning rate schedule: linear warmup, then inverse square root decay."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tf_transformer")
class WarmupInverseSqrtSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """lrate = scale * d_model^-0.5 * min(step^-0.5, step * warmup_steps^-1.5) (section 5.3).

    Steps count from 1 (the optimizer's iteration 0 uses step 1). The peak, reached at
    `warmup_steps`, is scale * (d_model * warmup_steps)^-0.5.

    Args:
        d_model: int. Model width.
        warmup_steps: int, default 4000.
        scale: float, default 1.0. Multiplies the whole schedule.
    """

    def __init__(self, d_model, warmup_steps=4000, scale=1.0):
        if d_model <= 0:
            raise ValueError(f"`d_model` must be positive; received d_model={d_model}.")
        if warmup_steps <= 0:
            raise ValueError(f"`warmup_steps` must be positive; received "
                             f"warmup_steps={warmup_steps}.")
        if scale <= 0:
            raise ValueError(f"`scale` must be positive; received scale={scale}.")
        self.d_model = d_model
        self.warmup_steps = warmup_steps
        self.scale = scale

    def __call__(self, step):
        step = tf.cast(step, tf.float32) + 1.0
        decay = tf.minimum(tf.math.rsqrt(step), step * self.warmup_steps ** -1.5)
        return self.scale * self.d_model ** -0.5 * decay

    def get_config(self):
        return {"d_model": self.d_model, "warmup_steps": self.warmup_steps, "scale": self.scale}
