"""From recorded episodes and observations to the tensors the policy trains on: the one point-cloud preprocessing
(``preprocess``), the batch format (``batch``), the keyframe dataset and its sampler (``dataset``) and SE(3)
augmentation (``augment``). Knows nothing of the network."""
