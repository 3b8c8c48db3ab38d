"""The batched NumPy engine: the state of N gridworlds in arrays, advanced together by one ``step``.

Layers: :mod:`constants` (codes), :mod:`world` (the arrays), :mod:`rules` (the step), :mod:`atlas` (tiles drawn
once with OpenCV), :mod:`view` (observations assembled by array indexing), :mod:`planner` (a BFS solver).
Nothing here knows about Gymnasium; :mod:`mmrl.envs` builds the environments on top.
"""
