"""Built-in models materialize once, even when processes race for them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

SCRIPT = "from outrider.models import materialize; print(materialize('tiny-random'))"


def test_racing_processes_build_tiny_random_once(tmp_path):
    env = {**os.environ, "OUTRIDER_CACHE": str(tmp_path / "cache")}
    racers = [subprocess.Popen([sys.executable, "-c", SCRIPT], env=env, stdout=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [racer.communicate(timeout=300)[0].strip().splitlines()[-1] for racer in racers]
    assert all(racer.returncode == 0 for racer in racers)
    folder = tmp_path / "cache" / "models" / "tiny-random-r1"
    assert outputs == [str(folder)] * 3
    assert sorted(p.name for p in folder.iterdir()) == sorted([
        ".outrider-complete", "chat_template.jinja", "config.json", "generation_config.json",
        "model.safetensors", "tokenizer.json", "tokenizer_config.json",
    ])
    # nothing half-built left next to it: only the two finished folders and their lock files
    assert sorted(p.name for p in folder.parent.iterdir()) == [
        ".smollm2-tokenizer-r1.lock", ".tiny-random-r1.lock", "smollm2-tokenizer-r1", "tiny-random-r1",
    ]
    config = json.loads((folder / "config.json").read_text())
    assert (config["num_hidden_layers"], config["hidden_size"], config["vocab_size"]) == (2, 128, 49152)
