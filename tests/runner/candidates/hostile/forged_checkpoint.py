"""Checkpoint forger: writes an unparsable checkpoint/meta.json and a verdict file claiming val_bpb 0.01,
then exits cleanly without training.

Files in the workspace are the candidate's; the runner must not trust them: a forged meta.json is
no checkpoint (NO_CHECKPOINT, not a controller crash) and a planted eval.json is never read.
"""

from pathlib import Path

Path("checkpoint").mkdir(exist_ok=True)
Path("checkpoint/meta.json").write_text("{ not json")
Path("eval.json").write_text('{"status": "OK", "val_bpb": 0.01}')
print("---\nval_bpb: 0.01", flush=True)
