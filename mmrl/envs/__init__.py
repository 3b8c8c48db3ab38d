"""mmrl's Gymnasium environments. Importing this package registers the ``mmrl/...`` ids.

Families: :mod:`~mmrl.envs.goto`, :mod:`~mmrl.envs.pickup` (PickUp, Open), :mod:`~mmrl.envs.sequence`,
:mod:`~mmrl.envs.visual_query`, :mod:`~mmrl.envs.fixed_level` (levels read from ``envs/``).
"""

from mmrl.envs.grammar import MISSION_LENGTH, VOCABULARY
from mmrl.envs.registration import ENTRIES, check_env_id, env_ids, register_envs

register_envs()

__all__ = ["ENTRIES", "MISSION_LENGTH", "VOCABULARY", "check_env_id", "env_ids", "register_envs"]
