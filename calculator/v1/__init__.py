"""Generated from proto/calculator/v1/*.proto by proto/generate.py. DO NOT EDIT."""
