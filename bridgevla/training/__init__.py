"""Training: the loop with exact resume (``loop``), pickle-free checkpoints (``state``), the trainer's configs
(``config``) and the ``bridgevla train`` job that wires dataset, policy and trainer together (``job``)."""
