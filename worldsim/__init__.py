"""worldsim: neural world models as Gymnasium environments.

Importing the package registers its environments with Gymnasium (see ``worldsim.envs``).
"""

from worldsim import envs  # noqa: F401  (importing it registers worldsim/MarioReal-v0 and the PointMaze ids)

__version__ = "0.1.0"
