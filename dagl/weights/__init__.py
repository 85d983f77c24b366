"""DAGL weights: reading and writing them (:mod:`.checkpoints`) and the ones shipped in this folder
(:mod:`.pretrained`: the ``.safetensors`` files and their model cards beside it)."""
