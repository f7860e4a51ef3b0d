"""Tourline: booking service for themed tourist trains and leisure bus lines."""

import os

# Piccolo finds its engine and apps through this module; set before any table is used.
os.environ.setdefault("PICCOLO_CONF", "app.piccolo_conf")
