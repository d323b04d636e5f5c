"""Entry points: the ``bridgevla`` command line, the ``make demo`` orchestration, demo generation's command line and
the policy speed benchmark. The only modules allowed to import every package (``pretrain`` included);
``tests/test_layering.py`` enforces it."""
