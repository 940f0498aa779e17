"""Step 1, data: raw text -> Megatron indexed datasets and ``domains.json`` (the embedded corpus, tokenizers,
sentence splitting, preprocessing, the ``.idx`` format, importing existing prefixes)."""
