"""worldsim: neural world models as Gymnasium environments.

Importing the package registers its environments with Gymnasium (see ``worldsim.envs``).
"""

from worldsim.envs import register_envs as _register_envs

__version__ = "0.1.0"

_register_envs()
