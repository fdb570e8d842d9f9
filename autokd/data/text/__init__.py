"""Text for language-model distillation: documents (:mod:`.corpus`), a byte-level BPE tokenizer
(:mod:`.tokenizer`), and fixed-length training windows (:mod:`.packing`, :mod:`.prepare`)."""
