"""Fake of buttomnutstoast/RLBench @ 587a6a0 ``rlbench/noise_model.py``."""


class NoiseModel:
    def apply(self, val):
        return val


class Identity(NoiseModel):
    pass
