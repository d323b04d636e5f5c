"""``python -m pretrain --config FILE [key=value ...] [--resume]``: heatmap pre-training (synthetic scenes, RoboPoint or
COCO detection data; docs/pretraining.md)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from pretrain.job import describe_grounding, load_pretrain_config, run_pretraining

    p = argparse.ArgumentParser(prog="python -m pretrain", description=__doc__.split("\n")[0])
    p.add_argument("--config", help="YAML with PretrainJobConfig fields (default: the dataclass defaults)")
    p.add_argument("--resume", action="store_true", help="continue the run in train.out_dir from its last checkpoint")
    p.add_argument("overrides", nargs="*", help="key=value, e.g. train.steps=500 scenes.objects=[2,4]")
    args = p.parse_args(argv)
    try:
        cfg = load_pretrain_config(args.config, list(args.overrides))
        result = run_pretraining(cfg, resume=args.resume)
    except (ValueError, FileNotFoundError) as e:
        print(f"pretrain: error: {e}", file=sys.stderr)
        return 2
    out = Path(cfg.train.out_dir)
    summary = json.loads((out / "summary.json").read_text())
    print(f"pre-trained {result.steps} steps in {result.seconds:.1f} s ({result.steps_per_second:.2f} steps/s); "
          f"final loss {result.final_loss:.4f}; policy saved to {out / 'policy'}")
    for key in ("grounding", "grounding_synthetic"):
        if summary.get(key):
            print(describe_grounding(summary[key]))
    data = summary.get("data")
    if data:
        print(f"data: {data['samples']} samples indexed ({data['train_samples']} train, {data['heldout_samples']} "
              f"held out); {data['missing_images']} images missing, {data['unreadable_during_training']} unreadable "
              f"in training, {data['unreadable_heldout']} held out ({out / 'data_report.json'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
