"""The frozen environment: presets, corpus, tokenizer, token shards, runtime, evaluator, integrity.

Nothing here is ever edited by the agent. The evaluator verifies the hashes of these files and of
the prepared data before it scores anything.
"""
