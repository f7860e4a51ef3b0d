"""Piccolo configuration: the engine chosen by settings and the one Piccolo app."""

from piccolo.conf.apps import AppRegistry

from app.core.database import create_engine
from app.core.settings import get_settings

DB = create_engine(get_settings())

APP_REGISTRY = AppRegistry(apps=["app.piccolo_app"])
