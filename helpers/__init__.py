"""helpers: the small package that the Prompting Vision Models lessons call.

One module per noun, in layers that only import downward (see the README's table):
``runtime``, ``images``, ``registry``, ``prompts``, ``detections``, ``viz`` at the bottom;
``tiny``, ``weights``, ``models`` to build and load models; ``tracking`` (a package); the model
nouns ``clip``, ``sam``, ``detect``, ``inpaint``, ``generate`` and ``lora``; ``dreambooth`` (a
package); ``widgets`` (a package) on top; and ``lessons``. Importing the package is cheap:
torch, transformers and diffusers are imported inside the functions that need them, so
``from helpers import images`` never waits for a deep-learning framework.

Lessons import modules, not names, so a reader always sees where a name comes from::

    from helpers import images, viz
    photo = images.sample("astronaut")
"""

import os as _os

__version__ = "0.1.0"

# Comet reads these when comet_ml is first imported, which other libraries may do before
# helpers.tracking does: no auto-logging monkey-patches, no crash reports sent home, quiet
# console. Each is only a default: a value already in the environment wins.
for _key, _value in (("COMET_DISABLE_AUTO_LOGGING", "1"), ("COMET_ERROR_TRACKING_ENABLE", "0"),
                     ("COMET_LOGGING_CONSOLE", "ERROR"), ("COMET_DISABLE_ANNOUNCEMENT", "1")):
    _os.environ.setdefault(_key, _value)
