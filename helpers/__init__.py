"""helpers: the small package that the Prompting Vision Models lessons call.

One module per idea (see the README): ``images``, ``runtime``, ``models``, ``tiny``,
``detections``, ``viz``, ``clip`` and ``lessons``. Importing the package is cheap: torch,
transformers and diffusers are imported inside the functions that need them, so
``from helpers import images`` never waits for a deep-learning framework.

Lessons import modules, not names, so a reader always sees where a name comes from::

    from helpers import images, viz
    photo = images.sample("astronaut")
"""

__version__ = "0.1.0"
