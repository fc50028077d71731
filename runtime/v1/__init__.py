"""Generated from proto/runtime/v1/*.proto by proto/generate.py. DO NOT EDIT."""
