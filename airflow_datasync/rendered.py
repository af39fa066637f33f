"""Values that reach a task as the text a template rendered them to.

Without ``render_template_as_native_obj`` a dict passed through a template arrives as its ``str()``: a
Python literal (``{'a': 1}``), not JSON. Both forms are read back here, so every caller accepts the same.
"""

from __future__ import annotations

import ast
import json
from typing import Any


def parse_rendered(text: str) -> Any:
    """``text`` as JSON, else as a Python literal; ValueError when it is neither."""
    try:
        return json.loads(text)
    except ValueError:
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise ValueError(f"{text!r} is neither JSON nor a Python literal") from None
