"""Evaluation: one resumable, parallel runner for every benchmark (``runner``), what it can put in front of an
environment (``agents``), benchmark name -> environment factory (``envs``), success tables (``report``) and offline
per-keypose accuracy on held-out demos (``keypose_eval``). Nothing here branches on a benchmark's name."""
