"""Pre-training for the multimodal extractor: observation collection, autoencoders, the pre-trained encoder bundle,
loading and freezing, and behaviour cloning from the planner's demonstrations.

Entry points: ``mmrl pretrain`` (:mod:`mmrl.cli.pretrain`), :func:`mmrl.pretrain.loading.load_into` (called by the
extractor for ``pretrained=DIR, freeze=...``).
"""
