"""What forgeml tells a user that is not an error: the inferred kind of each column, data that looks
wrong for the config, which step a bundle's weights come from.

Library code calls `note` (information) or `warn` (something the user should look at); both go to the
standard `logging` logger "forgeml". The CLI shows them on stderr ("note: ...", "warning: ..."); in
Python, warnings reach stderr through logging's last-resort handler and notes stay quiet unless the
user configures logging. Tests read them with pytest's `caplog`.

    from forgeml.notes import note, warn
    warn(f"{path}: column 'age' row 17: 'n/a' is not a number; the column is read as a category. "
         "Declare it with data.features: {age: numeric} and data.na_values: ['n/a']")
"""

from __future__ import annotations

import logging

logger = logging.getLogger("forgeml")


def note(message: str) -> None:
    """Information worth a line: what was inferred or decided on the user's behalf."""
    logger.info(message)


def warn(message: str) -> None:
    """Something that is probably not what the user meant; training goes on."""
    logger.warning(message)
