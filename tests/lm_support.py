"""The tiny language-model pipeline tests train in seconds (12 pydoc documents, BPE 300, context 32)."""

TINY_LM = {
    "task": "lm",
    "name": "tiny_lm",
    "data": {"max_documents": 12, "holdout_every": 4, "context": 32, "tokenizer": {"vocab_size": 300}},
    "teacher": {"model": {"name": "decoder", "params": {"layers": 2, "width": 32, "heads": 2}},
                "train": {"epochs": 2, "batch_size": 16, "lr": 3e-3}},
    "student": {"model": {"name": "decoder", "params": {"layers": 1, "width": 16, "heads": 2}},
                "train": {"epochs": 2, "batch_size": 16, "lr": 3e-3}},
    "distill": {"method": "fkl", "alpha": 0.5, "top_k": 8},
    "evaluate": {"prompts": 4, "prompt_tokens": 8, "new_tokens": 8, "speed": False},
    "runtime": {"device": "cpu", "num_threads": 1},
}
